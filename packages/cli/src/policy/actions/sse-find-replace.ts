/**
 * `sse-find-replace` (phase `on_event_stream_message`), as ngrok documents it: each
 * server-sent event message of a `text/event-stream` response goes through the
 * `replacements` as it streams (sse.ts cuts the messages). A rule names its `field`,
 * `data` (the default; the message's data lines joined with LF) or `retry`, which may
 * take `${…}`; `from` is RE2, `to` takes `$1`. Every match is replaced. The result is
 * `actions.ngrok.sse_find_replace.replacements` for the message.
 */
import type { ActionDefinition } from '../action.js'
import { templateAt } from '../compile-helpers.js'
import { applyReplacements, readReplacements, type ReplacementMatch } from '../find-replace.js'
import { setActionResult } from '../state.js'

const FIELDS = ['data', 'retry'] as const

export const sseFindReplace: ActionDefinition = {
  type: 'sse-find-replace',
  phases: ['on_event_stream_message'],
  compile(config) {
    const rules = readReplacements(config, (item) => {
      const text = item.template('field', 'data')
      if (!text.includes('${') && !(FIELDS as readonly string[]).includes(text)) item.fail('field', `is not a field sse-find-replace can change: ${JSON.stringify(text)}`, FIELDS)
      return { field: templateAt(item, item.at('field'), text) }
    })
    config.done()
    return function sseFindReplaceAction(state) {
      const message = state.sseMessage
      if (!message) return
      const root = state.root!
      const matches: ReplacementMatch[] = []
      rules.forEach((rule, i) => {
        const field = rule.field(root)
        if (!(FIELDS as readonly string[]).includes(field)) return
        const value = message.get(field)
        if (value === undefined) return
        const found: ReplacementMatch[] = []
        const out = applyReplacements(value, [rule], root, found)
        if (found.length === 0) return
        matches.push({ replacement_index: i, matched_content: found[0]!.matched_content })
        message.set(field, out)
      })
      setActionResult(state, 'ngrok', 'sse_find_replace', { replacements: matches })
    }
  },
}
