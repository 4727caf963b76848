/**
 * The local service a tunnel forwards to: its address as the user wrote it, and the
 * DNS lookup that reaches it.
 *
 * `gw http 3000`, `gw http host:port` and `gw http https://host:port` all name one
 * origin. A bare port means http://localhost:PORT, except 443, which means https (as
 * in ngrok). `localhost` must work whether the service listens on ::1 or 127.0.0.1: the
 * agent learns once which of the two a port answers on (loopback-choice.ts).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns'
import { CliError } from '../errors.js'

export interface Upstream {
  /** Normalised origin, e.g. `http://localhost:3000`. */
  origin: string
  url: URL
  tls: boolean
  hostname: string
  port: number
}

export function parseUpstream(input: string): Upstream {
  const value = String(input).trim()
  const hint = 'give a port (3000), host:port (localhost:3000) or a URL (https://localhost:8443)'
  let url: URL
  if (/^\d+$/.test(value)) {
    const port = Number(value)
    if (port < 1 || port > 65535) throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid port ${value}: a port is 1-65535`)
    url = new URL(port === 443 ? 'https://localhost' : `http://localhost:${port}`)
  } else {
    const badPort = /:(\d+)\/?$/.exec(value)
    if (badPort && Number(badPort[1]) > 65535) {
      throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid port ${badPort[1]} in "${value}": a port is 1-65535`)
    }
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
    try {
      url = new URL(withScheme)
    } catch {
      throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid upstream "${value}": ${hint}`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid upstream "${value}": the scheme must be http or https, got ${url.protocol.slice(0, -1)}`)
    }
    if (!url.hostname) throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid upstream "${value}": no host; ${hint}`)
    if (url.port !== '' && (Number(url.port) < 1 || Number(url.port) > 65535)) {
      throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid port in "${value}": a port is 1-65535`)
    }
  }
  const tls = url.protocol === 'https:'
  const port = url.port ? Number(url.port) : tls ? 443 : 80
  const hostname = url.hostname.replace(/^\[|\]$/g, '')
  return { origin: url.origin, url, tls, hostname, port }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/**
 * DNS lookup in which `localhost` is always both loopback addresses. Many machines'
 * /etc/hosts map it to 127.0.0.1 alone, so a dev server listening on ::1 (Vite, Node
 * 18+ by default) would be unreachable; with both, happy eyeballs tries each.
 */
export function loopbackAwareLookup(hostname: string, options: LookupOneOptions | LookupAllOptions, callback: LookupCallback): void {
  if (hostname.toLowerCase() !== 'localhost') {
    dnsLookup(hostname, options as LookupAllOptions, callback as never)
    return
  }
  const all: LookupAddress[] = [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]
  const wanted = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all
  if ((options as LookupAllOptions).all) callback(null, wanted)
  else callback(null, wanted[0]!.address, wanted[0]!.family)
}
