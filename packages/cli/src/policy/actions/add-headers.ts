/**
 * `add-headers`: add headers to the request (on_http_request) or the response
 * (on_http_response). Values take `${…}` interpolation. Setting `host` on a request also
 * changes `req.host`, which later rules and the upstream's Host see, and, as in ngrok,
 * a `Location` the upstream answers with that names the new host is rewritten back to
 * the public one, so redirects keep the client on the tunnel.
 */
import type { ActionDefinition } from '../action.js'
import { headerTemplates } from '../compile-helpers.js'
import { getHeader, setHeader } from '../headers.js'
import { addResponseHook, setActionResult, type PolicyState } from '../state.js'

function rewriteLocation(state: PolicyState, upstreamHost: string, publicHost: string, scheme: string): void {
  const res = state.response
  const location = res && getHeader(res.rawHeaders, 'location')
  if (!res || !location) return
  try {
    const url = new URL(location)
    if (url.host.toLowerCase() !== upstreamHost.toLowerCase()) return
    const pub = new URL(`${scheme}://${publicHost}`)
    url.protocol = pub.protocol
    url.hostname = pub.hostname
    url.port = pub.port
    setHeader(res.rawHeaders, 'location', url.href)
  } catch {
    // A relative Location already stays on the public host.
  }
}

export const addHeaders: ActionDefinition = {
  type: 'add-headers',
  phases: ['on_http_request', 'on_http_response'],
  compile(config, ctx) {
    const headers = headerTemplates(config, 'headers', true)
    config.done()
    if (ctx.phase === 'on_http_request') {
      return function addRequestHeaders(state) {
        const req = state.request!
        const added: Record<string, string> = {}
        for (const [name, value] of headers) {
          const v = value(state.root!)
          added[name.toLowerCase()] = v
          if (name.toLowerCase() === 'host') {
            const publicHost = req.host
            setHeader(req.rawHeaders, name, v)
            req.host = v
            if (v !== publicHost) addResponseHook(state, (s) => rewriteLocation(s, v, publicHost, req.scheme))
          } else req.rawHeaders.push(name, v)
        }
        // Set after the values: an add-headers that reads this variable sees the one before it.
        setActionResult(state, 'ngrok', 'add_headers', { headers_added: added })
      }
    }
    return function addResponseHeaders(state) {
      const raw = state.response!.rawHeaders
      const added: Record<string, string> = {}
      for (const [name, value] of headers) {
        const v = value(state.root!)
        added[name.toLowerCase()] = v
        raw.push(name, v)
      }
      setActionResult(state, 'ngrok', 'add_headers', { headers_added: added })
    }
  },
}
