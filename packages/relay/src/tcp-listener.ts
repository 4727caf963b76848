/**
 * The relay's tcp endpoints: one public port per endpoint, from the operator's range
 * (tcp-ports.ts), listened on while an agent holds it.
 *
 *   accept on port P → route by port → open stream (TCP_HEAD) → raw bytes both ways
 *
 * Ports belong to tokens exactly as names do (names.ts, in `tcp-ports.json`): the token
 * that first held a port keeps it across reconnects and relay restarts, another token
 * is refused it (GW_ERR_TCP_PORT_TAKEN), a port the relay chose is free again after 7
 * days unused and one asked for after 90. A port the relay config reserves for a token
 * (`tcp_ports:`) is only ever that token's. The listener closes when the last agent
 * holding the port goes, so a port nobody serves refuses connections.
 *
 * In a cluster (`shared`), the owners are in the shared state (cluster/shared-names.ts, kind `port`),
 * and every relay listens on every port some relay of the cluster holds: a connection
 * for an agent held elsewhere goes to that relay over the relay-to-relay link, as HTTP
 * requests do. A relay that cannot listen on such a port (the holder is on the same
 * address, on the same machine) leaves it to the holder.
 */
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net'
import { randomInt } from 'node:crypto'
import { GwError, HandshakeError, MuxError, type Stream } from '@gw/protocol'
import type { AccessControl } from './access.js'
import type { AgentLink } from './agent-link.js'
import { normalizeAddress } from './forwarded-head.js'
import { NameRegistry, type NameStore } from './names.js'
import type { LogFn } from './options.js'
import { tokenIdOf, type RelayEvents } from './observe.js'
import { relayTcp } from './relay-tcp.js'
import { RouteTable, type RouteChange } from './routes.js'
import { describeRange, inRange, type TcpPortRange } from './tcp-ports.js'

export interface TcpEdgeOptions {
  /** Listen address, the relay's. */
  host: string
  /** Host printed in `tcp://HOST:PORT` URLs. */
  publicHost: string
  range: TcpPortRange | undefined
  /** Connections one endpoint may have open at once; then new ones are reset. */
  maxConnections: number
  /** A connection silent this long is closed, ms. */
  idleTimeout: number
  stateDir: string | undefined
  access: AccessControl
  log: LogFn
  /** `tcp:end` per connection (metrics), `limit:hit` at the connection limit. */
  events: RelayEvents
  /** A cluster's shared port owners and forwarding (cluster/cluster.ts); a lone relay keeps tcp-ports.json. */
  shared?: TcpShared
}

/** Port ownership kept for a whole cluster, and the way to agents held by other relays. */
export interface TcpShared {
  store: SharedPortStore
  /** A stream to the agent holding `port` through the relay that holds it. */
  locate(port: number): Promise<{ remote: { owner: string; openStream(): Stream } } | { missing: true } | { failure: [string, string] }>
}

export interface SharedPortStore extends NameStore {
  claim(port: string, owner: string): Promise<void>
  /** False when anyone holds the port already. */
  claimFresh(port: string, owner: string): Promise<boolean>
  forget(port: string, owner: string): Promise<void>
}

/** Ports tried, at random in the range, before a random claim gives up. */
const RANDOM_TRIES = 64

interface PortListener {
  server: Server
  port: number
  connections: Set<Socket>
}

export class TcpEdge {
  /** String(port) → the links serving it (several when pooled). */
  readonly routes = new RouteTable()
  private readonly ports: NameRegistry | SharedPortStore
  private readonly listeners = new Map<number, PortListener>()
  /** Ports some relay of the cluster holds: listened on here too, to forward. */
  private readonly remote = new Set<number>()
  /** Listens for `forward` on their way: a claim of the port waits for them. */
  private readonly forwarding = new Map<number, Promise<void>>()
  /** Ports being listened on right now, by owner: two hellos never race for one. */
  private readonly pending = new Map<number, string>()
  private closed = false
  private draining = false

  constructor(private readonly opts: TcpEdgeOptions) {
    this.ports = opts.shared?.store ?? new NameRegistry(opts.stateDir, { file: 'tcp-ports.json' })
    this.ports.held = this.routes
  }

  get enabled(): boolean {
    return this.opts.range !== undefined
  }

  urlFor(port: number): string {
    const host = this.opts.publicHost.includes(':') ? `[${this.opts.publicHost}]` : this.opts.publicHost
    return `tcp://${host}:${port}`
  }

  /** Connections open now across every tcp endpoint. */
  openConnections(): number {
    let n = 0
    for (const l of this.listeners.values()) n += l.connections.size
    return n
  }

  /**
   * The port `owner` gets: the one asked for, or a free one, listened on before this
   * returns. Throws a HandshakeError with the reason otherwise.
   */
  async claim(owner: string, asked: number | undefined): Promise<number> {
    const range = this.opts.range
    if (range === undefined) {
      throw new HandshakeError('GW_ERR_TCP_DISABLED', 'this relay serves no TCP endpoints; its operator turns them on with gw relay --tcp-ports 20000-20100')
    }
    if (this.closed) throw new HandshakeError('GW_ERR_TCP_DISABLED', 'the relay is closing')
    if (asked !== undefined) return this.claimPort(owner, asked, range)
    return range === 'any' ? this.claimAny(owner) : this.claimRandom(owner, range)
  }

  private async claimPort(owner: string, port: number, range: TcpPortRange): Promise<number> {
    if (!inRange(range, port)) {
      throw new HandshakeError('GW_ERR_TCP_PORT_UNAVAILABLE', `TCP port ${port} is outside this relay's range (${describeRange(range)}); ask for one inside it, or leave the port out`)
    }
    this.opts.access.checkTcpPort(port, owner)
    await this.forwarding.get(port)
    // The shared store's claim is the word on it (the cache may be behind another relay's claim).
    const holder = (this.opts.shared ? undefined : this.ports.owner(String(port))) ?? this.pending.get(port)
    if (holder !== undefined && holder !== owner) {
      throw new HandshakeError('GW_ERR_TCP_PORT_TAKEN', `TCP port ${port} belongs to another authtoken on this relay; leave the port out for a free one`)
    }
    if (this.listeners.has(port)) {
      await this.ports.claim(String(port), owner)
      return port
    }
    if (this.pending.has(port)) throw new HandshakeError('GW_ERR_TCP_PORT_UNAVAILABLE', `TCP port ${port} is being opened for another connection of this authtoken; try again`)
    this.pending.set(port, owner)
    try {
      // Owned first (another relay may own it), then listened on.
      if (this.opts.shared) await this.ports.claim(String(port), owner)
      if (!this.listeners.has(port)) {
        try {
          await this.listen(port)
        } catch (err) {
          throw new HandshakeError('GW_ERR_TCP_PORT_UNAVAILABLE', `the relay cannot listen on TCP port ${port} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ask for another, or leave the port out`)
        }
      }
    } finally {
      this.pending.delete(port)
    }
    if (!this.opts.shared) (this.ports as NameRegistry).claim(String(port), owner)
    return port
  }

  /** A port the relay chose, claimed as a random one: false when someone holds it already. */
  private async claimChosen(port: number, owner: string): Promise<boolean> {
    if (this.opts.shared) return this.opts.shared.store.claimFresh(String(port), owner)
    return (this.ports as NameRegistry).claimFresh(String(port), owner)
  }

  private async claimAny(owner: string): Promise<number> {
    // Exclusive: in a worker of `gw relay --workers`, a port-0 listen shared through the
    // primary would hand every worker the same port.
    const listener = await this.listen(0, true)
    let fresh: boolean
    try {
      fresh = await this.claimChosen(listener.port, owner)
    } catch (err) {
      this.unused(listener.port)
      throw err
    }
    if (!fresh) {
      // The system handed back a port someone owns from an earlier run: not ours.
      this.unused(listener.port)
      throw new HandshakeError('GW_ERR_TCP_PORT_UNAVAILABLE', `the system gave TCP port ${listener.port}, which another authtoken owns; try again`)
    }
    return listener.port
  }

  private async claimRandom(owner: string, range: { min: number; max: number }): Promise<number> {
    const free = (port: number): boolean => {
      const holder = this.opts.access.tcpPortHolder(port)
      return !this.listeners.has(port) && !this.pending.has(port) && !this.remote.has(port) && !this.forwarding.has(port) && this.ports.owner(String(port)) === undefined && (holder === undefined || holder === owner)
    }
    const size = range.max - range.min + 1
    const candidates: number[] = []
    if (size <= 4096) {
      for (let p = range.min; p <= range.max; p++) if (free(p)) candidates.push(p)
      shuffle(candidates)
    } else {
      for (let i = 0; i < RANDOM_TRIES * 4 && candidates.length < RANDOM_TRIES; i++) {
        const p = range.min + randomInt(size)
        if (free(p) && !candidates.includes(p)) candidates.push(p)
      }
    }
    for (const port of candidates.slice(0, RANDOM_TRIES)) {
      if (!free(port)) continue
      this.pending.set(port, owner)
      try {
        // Another relay of the cluster may have just taken it: owned first, then listened on.
        if (this.opts.shared && !(await this.claimChosen(port, owner))) continue
        try {
          await this.listen(port)
        } catch {
          if (this.opts.shared) await this.opts.shared.store.forget(String(port), owner)
          continue // another process has it: try the next
        }
        if (!this.opts.shared && !(await this.claimChosen(port, owner))) {
          this.unused(port)
          continue
        }
        return port
      } finally {
        this.pending.delete(port)
      }
    }
    throw new HandshakeError('GW_ERR_TCP_PORTS_EXHAUSTED', `no free TCP port is left in this relay's range (${describeRange(range)}); stop a tcp tunnel you no longer use, or ask the relay operator for a wider range`)
  }

  private listen(port: number, exclusive = false): Promise<PortListener> {
    const connections = new Set<Socket>()
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(listener, socket))
    const listener: PortListener = { server, port, connections }
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port, host: this.opts.host, backlog: 511, exclusive }, () => {
        server.off('error', reject)
        // Errors after listen (EMFILE on accept) are logged; the listener stays.
        server.on('error', (err) => this.opts.log('warn', 'tcp listener error', { port: listener.port, error: err.message }))
        listener.port = (server.address() as AddressInfo).port
        this.listeners.set(listener.port, listener)
        if (this.closed) {
          this.unused(listener.port)
          reject(new Error('the relay is closing'))
          return
        }
        resolve(listener)
      })
    })
  }

  private accept(listener: PortListener, socket: Socket): void {
    socket.on('error', () => {})
    const { events } = this.opts
    const refuse = (token: string): void => {
      socket.resetAndDestroy()
      events.emit('tcp:end', { proto: 'tcp', token, result: 'refused', bytesIn: 0, bytesOut: 0, durationMs: 0 })
    }
    const link = this.routes.pick(String(listener.port))
    if (link) return this.serve(listener, socket, link.owner, link)
    const shared = this.opts.shared
    if (!shared) return refuse('none')
    // Held by another relay of the cluster: the same connection, over a stream through it.
    shared.locate(listener.port).then((found) => {
      if (socket.destroyed) return
      if (!('remote' in found)) {
        if ('failure' in found) this.opts.log('warn', 'tcp connection refused: the cluster cannot be asked', { port: listener.port, code: found.failure[0] })
        return refuse('none')
      }
      this.serve(listener, socket, found.remote.owner, found.remote)
    }, () => refuse('none'))
  }

  private serve(listener: PortListener, socket: Socket, owner: string, link: { openStream(): Stream }): void {
    const { events } = this.opts
    const refuse = (token: string): void => {
      socket.resetAndDestroy()
      events.emit('tcp:end', { proto: 'tcp', token, result: 'refused', bytesIn: 0, bytesOut: 0, durationMs: 0 })
    }
    const token = tokenIdOf(owner)
    if (listener.connections.size >= this.opts.maxConnections) {
      this.opts.log('warn', 'tcp connection refused', { port: listener.port, code: 'GW_ERR_TCP_CONNECTION_LIMIT', limit: this.opts.maxConnections })
      events.emit('limit:hit', { token, limit: 'tcp_connections' })
      return refuse(token)
    }
    let stream
    try {
      stream = link.openStream()
    } catch (err) {
      const code = err instanceof MuxError || err instanceof GwError ? err.code : 'GW_ERR_AGENT_OFFLINE'
      this.opts.log('warn', 'tcp connection refused: no stream to the agent', { port: listener.port, code })
      return refuse(token)
    }
    const started = performance.now()
    listener.connections.add(socket)
    socket.once('close', () => listener.connections.delete(socket))
    socket.setTimeout(this.opts.idleTimeout, () => socket.destroy())
    relayTcp(socket, stream, {
      proto: 'tcp',
      tunnel: String(listener.port),
      remoteAddress: normalizeAddress(socket.remoteAddress ?? ''),
      remotePort: socket.remotePort ?? 0,
      serverPort: listener.port,
      connectedAt: Date.now(),
    }, (result, bytesIn, bytesOut) => events.emit('tcp:end', { proto: 'tcp', token, result, bytesIn, bytesOut, durationMs: performance.now() - started }))
  }

  /** Put `link` on `port` (the caller has claimed it for the link's owner). */
  add(port: number, link: AgentLink, pooling: boolean): RouteChange {
    return this.routes.add(String(port), link, pooling)
  }

  /** Take `link` off `port`; the last one out closes the listener. */
  remove(port: number, link: AgentLink): void {
    if (!this.routes.remove(String(port), link)) return
    this.ports.release(String(port))
    this.unused(port)
  }

  /** A port claimed for a hello that never completed: close it unless someone serves it. */
  unused(port: number): void {
    if (this.routes.has(String(port)) || this.remote.has(port)) return
    const listener = this.listeners.get(port)
    if (!listener) return
    this.listeners.delete(port)
    listener.server.close()
    for (const socket of listener.connections) socket.destroy()
  }

  /**
   * Some relay of the cluster holds `port`: listen on it here too (when in this relay's
   * range), so a connection that arrives here is forwarded to it.
   */
  forward(port: number): void {
    const range = this.opts.range
    if (this.closed || this.draining || range === undefined || !inRange(range, port)) return
    this.remote.add(port)
    if (this.listeners.has(port) || this.pending.has(port) || this.forwarding.has(port)) return
    const listening = this.listen(port).then(
      () => {
        // Withdrawn while the listen was on its way.
        if (!this.remote.has(port)) this.unused(port)
      },
      (err: NodeJS.ErrnoException) => {
        // Its holder listens on this address itself (two relays on one machine): it serves it.
        this.opts.log('debug', 'tcp port held by another relay is not listened on here', { port, error: err.code ?? err.message })
      },
    ).finally(() => this.forwarding.delete(port))
    this.forwarding.set(port, listening)
  }

  /** No relay of the cluster holds `port` any more: close it unless an agent here holds it. */
  unforward(port: number): void {
    if (!this.remote.delete(port)) return
    this.unused(port)
  }

  /** The ports listened on for the cluster. */
  forwarded(): number[] {
    return [...this.remote]
  }

  /** Stop taking connections (a drain): listeners close, open connections carry on. */
  stopListening(): void {
    this.draining = true
    for (const l of this.listeners.values()) l.server.close()
  }

  async close(): Promise<void> {
    this.closed = true
    const all = [...this.listeners.values()]
    this.listeners.clear()
    await Promise.all(all.map((l) => new Promise<void>((resolve) => {
      l.server.close(() => resolve())
      for (const socket of l.connections) socket.destroy()
    })))
    await this.ports.flush()
  }
}

function shuffle<T>(list: T[]): void {
  for (let i = list.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[list[i], list[j]] = [list[j]!, list[i]!]
  }
}
