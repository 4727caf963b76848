/**
 * Log lines in the three formats ngrok users know: `term` for people, `logfmt` and
 * `json` for machines. Every line is one event; in JSON the tunnel's start is the line
 * with `"msg":"started tunnel"` and its `url`.
 */
import chalk from 'chalk'

export type LogFormat = 'term' | 'logfmt' | 'json'
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void
  enabled(level: LogLevel): boolean
}

function logfmtValue(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value)
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s)
}

export function createLogger(options: { format: LogFormat; level: LogLevel; write?: (line: string) => void; component?: string }): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'))
  const threshold = LEVELS[options.level]
  return {
    enabled: (level) => LEVELS[level] >= threshold,
    log(level, msg, fields = {}) {
      if (LEVELS[level] < threshold) return
      const t = new Date().toISOString()
      const extra = options.component ? { obj: options.component, ...fields } : fields
      if (options.format === 'json') {
        write(JSON.stringify({ t, lvl: level, msg, ...extra }))
      } else if (options.format === 'logfmt') {
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
