/**
 * `add-headers`: add headers to the request (on_http_request) or the response
 * (on_http_response). Values take `${…}` interpolation. Setting `host` on a request also
 * changes `req.host`, which later rules and the upstream's Host see.
 */
import type { ActionDefinition } from '../action.js'
import { headerTemplates } from '../compile-helpers.js'
import { setHeader } from '../headers.js'

export const addHeaders: ActionDefinition = {
  type: 'add-headers',
  phases: ['on_http_request', 'on_http_response'],
  compile(config, ctx) {
    const headers = headerTemplates(config, 'headers', true)
    config.done()
    if (ctx.phase === 'on_http_request') {
      return function addRequestHeaders(state) {
        const req = state.request!
        for (const [name, value] of headers) {
          const v = value(state.root!)
          if (name.toLowerCase() === 'host') {
            setHeader(req.rawHeaders, name, v)
            req.host = v
          } else req.rawHeaders.push(name, v)
        }
      }
    }
    return function addResponseHeaders(state) {
      const raw = state.response!.rawHeaders
      for (const [name, value] of headers) raw.push(name, value(state.root!))
    }
  },
}
