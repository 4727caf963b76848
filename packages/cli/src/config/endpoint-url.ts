/**
 * ngrok's endpoint URL (`--url`, or `url:` in the config file) read into what gw asks
 * the relay for. Whatever gw cannot serve is refused here with the reason, never
 * quietly turned into something else:
 *
 * - `myapp`: a name under the relay's domain (gw's short form);
 * - `myapp.tunnel.example.com`, `https://myapp.tunnel.example.com`: a full host, which the
 *   relay checks against the domain it serves (GW_ERR_DOMAIN_NOT_SERVED);
 * - `tcp://…`, `tls://…`: not HTTP endpoints (`gw tcp` and `gw tls` read them: tcp-endpoint-url.ts); `*.example.com`: wildcards;
 *   a port or a path: the relay chooses the port;
 * - `https://app.internal` (a port allowed): an internal endpoint, kept in the agent.
 */
import { CliError } from '../errors.js'

export interface EndpointUrl {
  /** The name to ask for: the first label. */
  publicName: string
  /** The full host, when one was given; the relay checks its domain. */
  publicHost?: string
  /**
   * An internal endpoint's host (`api.internal`, `api.internal:8080`): it stays in the
   * agent, reached by forward-internal. publicName is then empty.
   */
  internalHost?: string
}

/**
 * @example
 * parseEndpointUrl('https://api.tunnel.example.com', '--url')
 * // { publicName: 'api', publicHost: 'api.tunnel.example.com' }
 */
export function parseEndpointUrl(value: string, where: string): EndpointUrl {
  const text = value.trim()
  const bad = (why: string): never => {
    throw new CliError('GW_ERR_INVALID_FLAG', `${where} ${JSON.stringify(value)}: ${why}`)
  }
  if (text === '') bad('give a name (myapp) or a host (myapp.tunnel.example.com)')
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase()
  if (scheme === 'tcp' || scheme === 'tls') {
    bad(`gw http serves http:// and https:// URLs; a ${scheme}:// endpoint is served by gw ${scheme} <port> --url ${text}, or by gw start from the config file`)
  }
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') bad(`the scheme must be http or https, got ${scheme}`)
  const rest = scheme === undefined ? text : text.slice(scheme.length + 3)
  const m = /^([^/:?#]*)(:\d*)?([/?#].*)?$/.exec(rest)
  if (m === null) bad('not a host name')
  const host = m![1]!.toLowerCase().replace(/\.$/, '')
  if (host.endsWith('.internal') && host !== '.internal') {
    if (m![3] !== undefined && m![3] !== '/') bad('an endpoint URL has no path')
    const port = m![2]?.slice(1)
    if (port === '') bad('give the port after the colon, or leave it out')
    const defaultPort = scheme === 'http' ? '80' : '443'
    return { publicName: '', internalHost: port && port !== defaultPort ? `${host}:${port}` : host }
  }
  if (m![2] !== undefined) bad('the relay chooses the port; leave it out')
  if (m![3] !== undefined && m![3] !== '/') bad('an endpoint URL has no path; route paths with a traffic policy instead')
  if (host === '') bad('give a name (myapp) or a host (myapp.tunnel.example.com)')
  if (host.startsWith('*.')) bad('wildcard endpoints are not supported; ask for one name')
  const labels = host.split('.')
  if (labels.length === 1) return { publicName: host }
  return { publicName: labels[0]!, publicHost: host }
}

/**
 * ngrok's `--binding` / `bindings:`: `public`, and `internal` (with a `*.internal` URL:
 * `https://api.internal`, `tcp://camera.internal:22`, `tls://db.internal`, reached by
 * forward-internal from the agent's other endpoints and from the agents of its authtoken
 * on the relay).
 */
export function checkBinding(binding: string, where: string, internalAllowed = false): void {
  if (binding === 'public' || (binding === 'internal' && internalAllowed)) return
  const why = binding === 'internal'
    ? 'gw serves internal endpoints over http only: gw http <port> --url https://<name>.internal, or url: https://<name>.internal in a config file'
    : binding === 'kubernetes' ? 'gw has no Kubernetes operator' : 'the bindings are public, internal and kubernetes'
  throw new CliError('GW_ERR_INVALID_FLAG', `${where} ${JSON.stringify(binding)}: ${why}`)
}
