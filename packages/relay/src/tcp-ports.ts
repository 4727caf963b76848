/**
 * The relay's TCP port range (`--tcp-ports`, `tcp_ports:` in the relay config): the
 * public ports tcp endpoints get. Off by default: a relay opens no port beyond its
 * HTTP and HTTPS ones unless its operator says which.
 *
 * - `20000-20100`: ports 20000 to 20100, both included; `20001`: that one port;
 * - `any`: any port the system gives (a port 0 listen), and any port asked for. For a
 *   relay on a private machine; the embedded relay of `gw tcp` uses it.
 */
import { RelayError } from './errors.js'

export type TcpPortRange = { min: number; max: number } | 'any'

/**
 * @example
 * parseTcpPorts('20000-20100') // { min: 20000, max: 20100 }
 */
export function parseTcpPorts(value: string, where = '--tcp-ports'): TcpPortRange {
  const text = String(value).trim().toLowerCase()
  if (text === 'any') return 'any'
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(text)
  const min = m ? Number(m[1]) : NaN
  const max = m ? Number(m[2] ?? m[1]) : NaN
  if (!m || min < 1 || max > 65535 || min > max) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `${where} ${JSON.stringify(value)}: give a range of ports such as 20000-20100 (1-65535, low to high), one port, or any`)
  }
  return { min, max }
}

export function inRange(range: TcpPortRange, port: number): boolean {
  return range === 'any' ? port >= 1 && port <= 65535 : port >= range.min && port <= range.max
}

export function describeRange(range: TcpPortRange): string {
  return range === 'any' ? 'any port' : range.min === range.max ? `port ${range.min}` : `ports ${range.min}-${range.max}`
}
