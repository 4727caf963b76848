/** `remove-headers`: drop headers, by name, case-insensitively, from the request or the response. */
import type { ActionDefinition } from '../action.js'
import { removeHeaders as removeRaw } from '../headers.js'

export const removeHeaders: ActionDefinition = {
  type: 'remove-headers',
  phases: ['on_http_request', 'on_http_response'],
  compile(config, ctx) {
    const names = new Set(config.stringList('headers', true, 1).map((n) => n.toLowerCase()))
    config.done()
    if (ctx.phase === 'on_http_request') {
      return function removeRequestHeaders(state) {
        removeRaw(state.request!.rawHeaders, names)
      }
    }
    return function removeResponseHeaders(state) {
      removeRaw(state.response!.rawHeaders, names)
    }
  },
}
