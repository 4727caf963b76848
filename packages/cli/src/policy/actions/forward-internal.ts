/**
 * `forward-internal`: hand the request to an internal endpoint (`https://api.internal`)
 * of the same agent, as ngrok does. The internal endpoint's own traffic policy runs on
 * it, its upstream answers, and the answer comes back through this endpoint's
 * `on_http_response` rules. Host stays the public one.
 *
 * `url` may take `${…}` (`https://${req.url.path.split('/')[1]}.internal`). Only the
 * host (and a port, when given) names the target: the scheme and any path are ngrok's
 * notation and the request keeps its own path. When no internal endpoint has that
 * host, `on_error: halt` (the default) answers 502 `GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND`,
 * and `on_error: continue` records the error in `actions.ngrok.forward_internal.error` and
 * lets the next action run (ngrok's fallback pattern: a custom-response after it).
 *
 * In on_tcp_connect (tcp and tls endpoints) the URL is a tcp or tls internal endpoint's,
 * `tcp://camera.internal:22` or `tls://db.internal` (port 443 then), and the agent splices
 * the raw connection to it (agent/tcp-internal.ts): its own on_tcp_connect runs, then its
 * upstream gets the bytes. With no such endpoint, `on_error: halt` closes the connection
 * and `continue` lets the next action run (with none, this endpoint's own upstream is dialled).
 */
import { respondJson, type ActionDefinition } from '../action.js'
import { templateAt } from '../compile-helpers.js'
import { setActionResult } from '../state.js'

/** `https://api.internal:443/x` → `api.internal`; `http://api.internal:8080` → `api.internal:8080`; undefined when not a *.internal URL. */
export function internalHostOf(url: string): string | undefined {
  let u: URL
  try {
    u = new URL(url.includes('://') ? url : `https://${url}`)
  } catch {
    return undefined
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined
  const host = u.hostname.toLowerCase().replace(/\.$/, '')
  if (!host.endsWith('.internal') || host === '.internal') return undefined
  return u.port ? `${host}:${u.port}` : host
}

/**
 * A tcp or tls internal endpoint's URL as the agent keys it: `tcp://camera.internal:22`,
 * `tls://db.internal` → `tls://db.internal:443`; undefined when it is not one (a tcp URL
 * needs its port).
 */
export function rawInternalTargetOf(url: string): string | undefined {
  const m = /^(tcp|tls):\/\/([^/:?#\s]+)(?::(\d{1,5}))?\/?$/i.exec(url.trim())
  if (!m) return undefined
  const proto = m[1]!.toLowerCase()
  const host = m[2]!.toLowerCase().replace(/\.$/, '')
  if (!host.endsWith('.internal') || host === '.internal' || !/^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}internal$/.test(host)) return undefined
  const port = m[3] !== undefined ? Number(m[3]) : proto === 'tls' ? 443 : undefined
  if (port === undefined || port < 1 || port > 65535) return undefined
  return `${proto}://${host}:${port}`
}

export const forwardInternal: ActionDefinition = {
  type: 'forward-internal',
  phases: ['on_http_request', 'on_tcp_connect'],
  compile(config, ctx) {
    const text = config.template('url')
    const url = templateAt(config, config.at('url'), text)
    if (ctx.phase === 'on_tcp_connect') {
      if (!text.includes('${') && rawInternalTargetOf(text) === undefined) {
        config.fail('url', `in on_tcp_connect must be the URL of a tcp or tls internal endpoint, such as tcp://camera.internal:22 or tls://db.internal, got ${JSON.stringify(text)}`)
      }
      const onError = config.oneOf('on_error', ['halt', 'continue'] as const, 'halt')
      config.done()
      return function forwardInternalTcpAction(state) {
        const target = url(state.root!)
        const key = rawInternalTargetOf(target)
        if (key !== undefined && state.internalEndpoint?.(key) === true) {
          setActionResult(state, 'ngrok', 'forward_internal', { url: key })
          return { kind: 'internal', host: key }
        }
        const message = key === undefined
          ? `forward-internal: ${JSON.stringify(target)} is not a tcp or tls internal endpoint URL (tcp://<name>.internal:<port>)`
          : `forward-internal: no endpoint of this agent, and none of its authtoken on the relay, is ${key}`
        const error = { code: 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND', message }
        setActionResult(state, 'ngrok', 'forward_internal', { url: key ?? target, error })
        if (onError === 'continue') return
        // In on_tcp_connect a respond closes the connection; the code goes to the agent's log.
        return respondJson(502, { error: error.code, message }, [], error.code)
      }
    }
    if (!text.includes('${') && internalHostOf(text) === undefined) {
      config.fail('url', `must be the URL of an internal endpoint, such as https://api.internal, got ${JSON.stringify(text)}`)
    }
    const onError = config.oneOf('on_error', ['halt', 'continue'] as const, 'halt')
    config.done()
    return function forwardInternalAction(state) {
      const target = url(state.root!)
      const host = internalHostOf(target)
      const found = host !== undefined && state.internalEndpoint?.(host) === true
      if (found) {
        setActionResult(state, 'ngrok', 'forward_internal', { url: target })
        return { kind: 'internal', host }
      }
      const message = host === undefined
        ? `forward-internal: ${JSON.stringify(target)} is not an internal endpoint URL (https://<name>.internal)`
        : `forward-internal: this agent has no internal endpoint ${host}`
      const error = { code: 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND', message }
      setActionResult(state, 'ngrok', 'forward_internal', { url: target, error })
      if (onError === 'continue') return
      return respondJson(502, { error: error.code, message }, [], error.code)
    }
  },
}
