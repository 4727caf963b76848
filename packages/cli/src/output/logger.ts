/**
 * Log lines in the three formats ngrok users know: `term` for people, `logfmt` and
 * `json` for machines. Every line is one event; in JSON the tunnel's start is the line
 * with `"msg":"started tunnel"` and its `url`.
 *
 * `gw http --no-tui` writes a line per request, so this is on the request path. Lines to
 * stdout are batched: the first line of an event-loop turn schedules one write for every
 * line that turn produces (under load, tens of requests end in one turn), instead of one
 * write(2) per line, since stdout is synchronous for files and pipes on Linux. Nothing waits
 * longer than the turn it was logged in, and what is still pending when the process exits
 * is written synchronously then.
 */
import { writeSync } from 'node:fs'
import chalk from 'chalk'

export type LogFormat = 'term' | 'logfmt' | 'json'
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void
  enabled(level: LogLevel): boolean
  /** Write out lines still batched, before something else writes to stdout. */
  flush(): void
}

function logfmtValue(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value)
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s)
}

/** Keys that need no escaping in JSON (what gw's own field names are). */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/
/** Keys the line itself sets; a field of the same name replaces it, as in an object spread. */
const OWN_KEYS = new Set(['t', 'lvl', 'msg'])

/**
 * `{"t":…,"lvl":…,"msg":…,<fields>}`, the same text JSON.stringify gives for that object,
 * built without the intermediate object: one JSON.stringify per value.
 */
export function jsonLine(t: string, level: LogLevel, msg: string, component: string | undefined, fields: Record<string, unknown>): string {
  let line = `{"t":"${t}","lvl":"${level}","msg":${JSON.stringify(msg)}`
  if (component !== undefined) line += `,"obj":${JSON.stringify(component)}`
  for (const key in fields) {
    const value = fields[key]
    if (OWN_KEYS.has(key) || (key === 'obj' && component !== undefined)) {
      return JSON.stringify({ t, lvl: level, msg, ...(component !== undefined ? { obj: component } : {}), ...fields })
    }
    const text = JSON.stringify(value)
    // As JSON.stringify does for an object: undefined, functions and symbols are left out.
    if (text === undefined) continue
    line += `,${PLAIN_KEY.test(key) ? `"${key}"` : JSON.stringify(key)}:${text}`
  }
  return `${line}}`
}

let pending = ''
let scheduled = false
let exitHook = false

function flushStdout(): void {
  scheduled = false
  if (pending === '') return
  const out = pending
  pending = ''
  process.stdout.write(out)
}

/** What a batch may hold before it is written at once: a burst must not grow without bound. */
const BATCH_LIMIT = 64 * 1024

function writeBatched(line: string): void {
  pending += `${line}\n`
  if (!exitHook) {
    exitHook = true
    // 'exit' handlers run synchronously; the event loop will not run the scheduled write.
    process.once('exit', () => {
      if (pending === '') return
      try {
        writeSync(1, pending)
      } catch {
        // stdout is gone (closed pipe): there is nobody left to tell.
      }
      pending = ''
    })
  }
  if (pending.length >= BATCH_LIMIT) flushStdout()
  else if (!scheduled) {
    scheduled = true
    setImmediate(flushStdout)
  }
}

export function createLogger(options: { format: LogFormat; level: LogLevel; write?: (line: string) => void; component?: string }): Logger {
  const write = options.write ?? writeBatched
  const threshold = LEVELS[options.level]
  const { component } = options
  return {
    enabled: (level) => LEVELS[level] >= threshold,
    flush: () => { if (options.write === undefined) flushStdout() },
    log(level, msg, fields = {}) {
      if (LEVELS[level] < threshold) return
      const t = new Date().toISOString()
      if (options.format === 'json') {
        write(jsonLine(t, level, msg, component, fields))
        return
      }
      const extra = component ? { obj: component, ...fields } : fields
      if (options.format === 'logfmt') {
        const parts = [`t=${t}`, `lvl=${level}`, `msg=${logfmtValue(msg)}`]
        for (const [k, v] of Object.entries(extra)) if (v !== undefined) parts.push(`${k}=${logfmtValue(v)}`)
        write(parts.join(' '))
      } else {
        const colour = level === 'error' ? chalk.red : level === 'warn' ? chalk.yellow : level === 'debug' ? chalk.gray : (s: string) => s
        const rest = Object.entries(fields)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${chalk.gray(k + '=')}${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ')
        write(`${chalk.gray(t.slice(11, 19))} ${colour(msg)}${rest ? ' ' + rest : ''}`)
      }
    },
  }
}
