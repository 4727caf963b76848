/**
 * The local service of a tcp or tls endpoint (`gw tcp 22`, `gw tls localhost:8443`): a
 * host and a port, dialled as raw TCP. A bare port is `localhost:PORT`; `tcp://` and
 * `tls://` prefixes are accepted as ngrok's config writes them, and mean the same.
 * The bytes are passed as they come: for `gw tls` the local service speaks TLS itself.
 */
import { CliError } from '../errors.js'
import type { Upstream } from './address.js'

/**
 * @example
 * parseTcpUpstream('22').origin            // 'localhost:22'
 * parseTcpUpstream('tcp://[::1]:5432').hostname // '::1'
 */
export function parseTcpUpstream(input: string): Upstream {
  const value = String(input).trim()
  const hint = 'give a port (22) or host:port (localhost:5432)'
  const bare = value.replace(/^(tcp|tls):\/\//i, '')
  let hostname = 'localhost'
  let portText = bare
  if (!/^\d+$/.test(bare)) {
    const m = /^(\[[0-9a-f:.]+\]|[^:/[\]\s]+):(\d+)\/?$/i.exec(bare)
    if (!m) {
      const why = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? `the scheme must be tcp or tls, not ${value.split(':')[0]}` : 'no port'
      throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid upstream "${value}": ${why}; ${hint}`)
    }
    hostname = m[1]!.replace(/^\[|\]$/g, '')
    portText = m[2]!
  }
  const port = Number(portText)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError('GW_ERR_INVALID_UPSTREAM', `invalid port ${portText} in "${value}": a port is 1-65535`)
  const host = hostname.includes(':') ? `[${hostname}]` : hostname
  return { origin: `${host}:${port}`, url: new URL(`tcp://${host}:${port}`), tls: false, hostname, port }
}
