/**
 * The public address `gw tcp` and `gw tls` ask for, in ngrok's shapes:
 *
 * - `gw tcp 22 --url tcp://tunnel.example.com:20001` (or `--remote-addr tunnel.example.com:20001`,
 *   ngrok's older flag): that port. The host is the relay's own; only the port is asked for.
 * - `gw tls 443 --url tls://app.tunnel.example.com` (or `app`, or the host alone): that
 *   name, checked by the relay against its domain like `gw http --url`.
 */
import { CliError } from '../errors.js'
import { rawInternalTargetOf } from '../policy/actions/forward-internal.js'
import { parseEndpointUrl, type EndpointUrl } from './endpoint-url.js'

/**
 * A tcp or tls internal endpoint's URL, as forward-internal names it in on_tcp_connect:
 * `tcp://camera.internal:22` (the port required, as ngrok requires it), `tls://db.internal`
 * (443 then) → `tls://db.internal:443`. Undefined when the host is not `*.internal`.
 */
export function parseRawInternalUrl(value: string, proto: 'tcp' | 'tls', where: string): string | undefined {
  const m = /^(?:([a-z][a-z0-9+.-]*):\/\/)?([^/:?#\s]*)/i.exec(value.trim())
  const host = m?.[2]?.toLowerCase().replace(/\.$/, '') ?? ''
  if (!host.endsWith('.internal')) return undefined
  const scheme = m?.[1]?.toLowerCase()
  const text = scheme === undefined ? `${proto}://${value.trim()}` : value.trim()
  const target = scheme === undefined || scheme === proto ? rawInternalTargetOf(text) : undefined
  if (target === undefined) {
    throw new CliError('GW_ERR_INVALID_FLAG', `${where} ${JSON.stringify(value)}: a ${proto} internal endpoint's URL is ${proto === 'tcp' ? 'tcp://<name>.internal:<port>' : 'tls://<name>.internal[:<port>]'}`)
  }
  return target
}

/**
 * @example
 * parseTcpEndpointUrl('tcp://tunnel.example.com:20001', '--url') // 20001
 */
export function parseTcpEndpointUrl(value: string, where: string): number {
  const text = value.trim()
  const bad = (why: string): never => {
    throw new CliError('GW_ERR_INVALID_FLAG', `${where} ${JSON.stringify(value)}: ${why}`)
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase()
  if (scheme !== undefined && scheme !== 'tcp') bad(`a tcp endpoint's URL is tcp://HOST:PORT, not ${scheme}://; for HTTP use gw http, for TLS gw tls`)
  const rest = scheme === undefined ? text : text.slice(scheme.length + 3)
  const m = /^\d+$/.test(rest) ? [rest, rest] : /^(?:\[[0-9a-f:.]*\]|[^:/[\]\s]*):(\d+)\/?$/i.exec(rest)
  if (!m) bad('give tcp://HOST:PORT (the relay\'s host and the port to ask for), HOST:PORT, or the port alone')
  const port = Number(m![1])
  if (!Number.isInteger(port) || port < 1 || port > 65535) bad('the port must be 1-65535')
  return port
}

/**
 * @example
 * parseTlsEndpointUrl('tls://app.tunnel.example.com', '--url') // { publicName: 'app', publicHost: 'app.tunnel.example.com' }
 */
export function parseTlsEndpointUrl(value: string, where: string): EndpointUrl {
  const text = value.trim()
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase()
  if (scheme !== undefined && scheme !== 'tls') {
    throw new CliError('GW_ERR_INVALID_FLAG', `${where} ${JSON.stringify(value)}: a tls endpoint's URL is tls://NAME.DOMAIN, not ${scheme}://; for HTTP use gw http, for raw TCP gw tcp`)
  }
  return parseEndpointUrl(scheme === undefined ? text : text.slice(6), where)
}
