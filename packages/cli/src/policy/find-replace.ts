/**
 * ngrok's find & replace: a list of `{from, to}` where `from` is an RE2 pattern (it may
 * take `${…}`) and `to` a replacement with `$1` captures (it may take `${…}` too). Rules
 * apply in order, each to the result of the one before, and replace every match. The
 * body and SSE actions share this; what they apply it to is theirs.
 */
import type { RE2JS } from 're2js'
import { patternAt, templateAt } from './compile-helpers.js'
import { ConfigReader } from './config-reader.js'
import type { Template } from './cel.js'
import type { EvalRoot } from './variables.js'

export interface Replacement {
  from: (root: EvalRoot) => RE2JS | undefined
  to: Template
}

/** What matched, as ngrok reports it: `actions.ngrok.<action>.replacements`. */
export interface ReplacementMatch {
  replacement_index: number
  matched_content: string
}

/** Read `replacements` (at least one) from an action's config; `extra` reads more keys of each item. */
export function readReplacements<T = object>(config: ConfigReader, extra?: (item: ConfigReader) => T): Array<Replacement & T> {
  const list = config.list('replacements', true, 1)
  return list.map((item, i) => {
    const r = new ConfigReader(item, [...config.path, 'replacements', i], config.source, 'a replacement ({from, to})')
    const from = patternAt(r, 'from', r.template('from'))
    const to = templateAt(r, r.at('to'), r.template('to', ''))
    const more = extra ? extra(r) : ({} as T)
    r.done()
    return { from, to, ...more }
  })
}

/** Apply the rules in order; `matches` collects the first match of each rule that matched. */
export function applyReplacements(text: string, rules: readonly Replacement[], root: EvalRoot, matches: ReplacementMatch[]): string {
  rules.forEach((rule, i) => {
    const re = rule.from(root)
    if (!re) return
    const m = re.matcher(text)
    if (!m.find()) return
    matches.push({ replacement_index: i, matched_content: m.group() ?? '' })
    text = re.matcher(text).replaceAll(rule.to(root))
  })
  return text
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** The body as text, or undefined when it is not UTF-8 (binary is never rewritten). */
export function decodeText(data: Buffer): string | undefined {
  try {
    return UTF8.decode(data)
  } catch {
    return undefined
  }
}
