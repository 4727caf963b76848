/** `remove-headers`: drop headers, by name, case-insensitively, from the request or the response. */
import type { ActionDefinition } from '../action.js'
import { removeHeaders as removeRaw } from '../headers.js'
import { setActionResult } from '../state.js'

export const removeHeaders: ActionDefinition = {
  type: 'remove-headers',
  phases: ['on_http_request', 'on_http_response'],
  compile(config, ctx) {
    const names = new Set(config.stringList('headers', true, 1).map((n) => n.toLowerCase()))
    config.done()
    /** ngrok's result: the names that were there and are gone. */
    const removed = (raw: readonly string[]): string[] => {
      const present = new Set<string>()
      for (let i = 0; i < raw.length; i += 2) if (names.has(raw[i]!.toLowerCase())) present.add(raw[i]!.toLowerCase())
      return [...present]
    }
    if (ctx.phase === 'on_http_request') {
      return function removeRequestHeaders(state) {
        setActionResult(state, 'ngrok', 'remove_headers', { headers_removed: removed(state.request!.rawHeaders) })
        removeRaw(state.request!.rawHeaders, names)
      }
    }
    return function removeResponseHeaders(state) {
      setActionResult(state, 'ngrok', 'remove_headers', { headers_removed: removed(state.response!.rawHeaders) })
      removeRaw(state.response!.rawHeaders, names)
    }
  },
}
