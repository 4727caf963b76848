/**
 * The relay's tls endpoints (`gw tls`): a connection to the HTTPS port whose ClientHello
 * names `<name>.<domain>` in SNI, held by a tls endpoint, is carried to that agent
 * without being decrypted; the upstream behind the agent holds the certificate and
 * answers the handshake itself.
 *
 *   accept → peek ClientHello (acme/tls-front.ts) → route by SNI → open stream (TCP_HEAD) → raw bytes
 *
 * Names are the relay's one namespace (names.ts): a name is its token's whether it
 * serves http or tls. An SNI that no tls endpoint holds goes to the relay's own TLS
 * server, as before.
 */
import type { Socket } from 'node:net'
import { MuxError } from '@gw/protocol'
import type { AgentLink } from './agent-link.js'
import { normalizeAddress } from './forwarded-head.js'
import type { LogFn } from './options.js'
import { tokenIdOf, type RelayEvents } from './observe.js'
import { relayTcp } from './relay-tcp.js'
import { RouteTable, type RouteChange } from './routes.js'

export interface TlsEdgeOptions {
  /** The tunnel name in a host (`app` for `app.<domain>`), or undefined. */
  nameOf: (host: string) => string | undefined
  maxConnections: number
  idleTimeout: number
  log: LogFn
  events: RelayEvents
}

export class TlsEdge {
  readonly routes = new RouteTable()
  private readonly open = new Map<string, Set<Socket>>()

  constructor(private readonly opts: TlsEdgeOptions) {}

  add(name: string, link: AgentLink, pooling: boolean): RouteChange {
    return this.routes.add(name, link, pooling)
  }

  /** True when the name has no link left. */
  remove(name: string, link: AgentLink): boolean {
    return this.routes.remove(name, link)
  }

  openConnections(): number {
    let n = 0
    for (const set of this.open.values()) n += set.size
    return n
  }

  /** Take the connection when a tls endpoint holds the SNI's name; false leaves it to the TLS server. */
  accept(servername: string, socket: Socket, serverPort: number): boolean {
    const name = this.opts.nameOf(servername)
    if (name === undefined || !this.routes.has(name)) return false
    socket.on('error', () => {})
    const { events } = this.opts
    const refuse = (token: string): true => {
      socket.resetAndDestroy()
      events.emit('tcp:end', { proto: 'tls', token, result: 'refused', bytesIn: 0, bytesOut: 0, durationMs: 0 })
      return true
    }
    const link = this.routes.pick(name)
    // Held, but every agent is leaving: nobody can answer this handshake.
    if (!link) return refuse('none')
    const token = tokenIdOf(link.owner)
    const open = this.open.get(name) ?? new Set<Socket>()
    if (open.size >= this.opts.maxConnections) {
      this.opts.log('warn', 'tls connection refused', { name, code: 'GW_ERR_TCP_CONNECTION_LIMIT', limit: this.opts.maxConnections })
      events.emit('limit:hit', { token, limit: 'tcp_connections' })
      return refuse(token)
    }
    let stream
    try {
      stream = link.openStream()
    } catch (err) {
      this.opts.log('warn', 'tls connection refused: no stream to the agent', { name, code: err instanceof MuxError ? err.code : 'GW_ERR_AGENT_OFFLINE' })
      return refuse(token)
    }
    const started = performance.now()
    this.open.set(name, open)
    open.add(socket)
    socket.once('close', () => {
      open.delete(socket)
      if (open.size === 0 && this.open.get(name) === open) this.open.delete(name)
    })
    // The front listener is not half-open; a passed-through connection must be.
    socket.allowHalfOpen = true
    socket.setTimeout(this.opts.idleTimeout, () => socket.destroy())
    relayTcp(socket, stream, {
      proto: 'tls',
      tunnel: name,
      remoteAddress: normalizeAddress(socket.remoteAddress ?? ''),
      remotePort: socket.remotePort ?? 0,
      serverPort,
      serverName: servername,
      connectedAt: Date.now(),
    }, (result, bytesIn, bytesOut) => events.emit('tcp:end', { proto: 'tls', token, result, bytesIn, bytesOut, durationMs: performance.now() - started }))
    return true
  }

  closeAll(): void {
    for (const set of this.open.values()) for (const socket of set) socket.destroy()
  }
}
