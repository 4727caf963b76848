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

export const forwardInternal: ActionDefinition = {
  type: 'forward-internal',
  phases: ['on_http_request'],
  compile(config) {
    const text = config.template('url')
    const url = templateAt(config, config.at('url'), text)
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
