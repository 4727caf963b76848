/**
 * A relay as one member of a cluster: any relay serves any name. The cluster's shared
 * state is Redis (`gw relay --redis`, relays on any machines) or the primary process of
 * `gw relay --workers N` without Redis (the workers of one machine): one interface,
 * backend.ts. The relay asks this module two things: who owns a name (`names`, the shared
 * `NameStore`), and, for a name none of its own agents holds, a stream to the relay that
 * holds it (`locate`). Everything else happens here, from the relay's events:
 *
 * - presence: the names this relay's agents hold are announced with a TTL and refreshed
 *   by a heartbeat (presence.ts);
 * - forwarding: a stream to the holder over the relay-to-relay link (peer-link.ts),
 *   which splices it onto the agent's link;
 * - tcp endpoints: ports are owned like names (kind `port`), and every relay listens on
 *   every port some relay of the cluster holds, forwarding a connection for an agent held
 *   elsewhere over the same link (the stream's first line is `tcp:<port>`);
 * - internal endpoints (`*.internal`, internal-endpoints.ts): `<owner> <host>` entries
 *   have presence (kind `internal`) and a live list; each relay tells its agents their
 *   token's entries across the cluster (read again on every heartbeat and whenever a
 *   relay says on INTERNAL_CHANNEL that an owner's changed), and an agent's internal
 *   request for a host held elsewhere goes over the same link (line `int:<owner> <host>`);
 * - the shared state away (Redis down, the primary slow): nothing local needs it
 *   (requests to this relay's own agents never touch it); lookups fall back on what was
 *   last seen; when Redis returns, this relay's record, presence and name claims are
 *   written again (a Redis that lost its data gets them back).
 */
import { networkInterfaces } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { ErrorCode, Stream } from '@gw/protocol'
import type { AgentLink } from '../agent-link.js'
import type { RouteTable } from '../routes.js'
import type { RelayEvents } from '../observe.js'
import type { LogFn } from '../options.js'
import { RelayError } from '../errors.js'
import { connectRedis } from './redis-connection.js'
import { KEY_PREFIX, RedisBackend } from './redis-backend.js'
import { SharedNameStore } from './shared-names.js'
import type { ClusterBackend, PresenceKind } from './backend.js'
import { IpcBackend } from './ipc-backend.js'
import { Presence, type Located, type RelayRecord } from './presence.js'
import { listenForPeers, PeerPool, type PeerServer } from './peer-link.js'
import { listenForTakeovers, publishTakeover, takenOver } from './takeover.js'
import { GlobalRateLimiter } from './rate-limit.js'
import { ConfigShare, type SharedConfig } from './shared-config.js'
import { clusterAcme } from './cluster-acme.js'
import type { SharedAcme } from '../acme/shared-acme.js'
import type { TokenEntry, TokenLimits } from '../access.js'
import type { InternalClusterSide } from '../internal-endpoints.js'

export interface ClusterOptions {
  /** redis://, rediss:// or redis-sentinel:// URL (redis-connection.ts); without it, the state is the primary process's (`--workers`, ipc-backend.ts). */
  redis?: string | undefined
  /** PEM of the CA that signed a rediss:// Redis's certificate. */
  redisCa?: string | undefined
  /** Shared by every relay of the cluster; authenticates the relay-to-relay link. */
  secret: string
  /** Where the relay-to-relay listener binds: host:port (port 0: any free port). */
  peerListen: string
  /** host:port other relays reach this one at (default: the listen address, or this machine's first IPv4). */
  peerAdvertise?: string | undefined
  /** Presence TTL, ms; refreshed every third of it. Default 15 s. */
  presenceTtl?: number
  heartbeatTimeout: number
  maxNamesPerOwner?: number
  log: LogFn
}

/** What the cluster sees of the relay. */
export interface ClusterHost {
  routes: RouteTable
  links: ReadonlySet<AgentLink>
  events: RelayEvents
  tcp: ClusterTcpHost
  internal: ClusterInternalHost
  /** Another relay wrote new tokens and limits (its config file). */
  applyConfig(doc: SharedConfig): void
}

/** What the cluster sees of the relay's tcp endpoints (tcp-listener.ts). */
export interface ClusterTcpHost {
  /** String(port) → the links here that serve it. */
  readonly routes: RouteTable
  /** Some relay of the cluster holds `port`: listen on it here too, and forward. */
  forward(port: number): void
  /** No relay holds `port` any more: stop listening, unless an agent here holds it. */
  unforward(port: number): void
  /** The ports listened on for the cluster. */
  forwarded(): number[]
  /** Take `link` off `port` (another relay took the port over). */
  remove(port: number, link: AgentLink): void
}

/** What the cluster sees of the relay's internal endpoints (internal-endpoints.ts). */
export interface ClusterInternalHost {
  attachCluster(side: InternalClusterSide): void
  /** `<owner> <host>` of every internal endpoint this relay's agents serve. */
  entries(): string[]
  /** Owners with an agent here. */
  owners(): string[]
  /** `owner`'s hosts across the cluster (this relay's included). */
  setClusterHosts(owner: string, hosts: Iterable<string>): void
  /** The link here for `<owner> <host>`. */
  pick(entry: string): { openStream(): Stream } | undefined
}

/** What a lookup is for: an HTTP name, a TCP port (`tcp:<port>`, never a DNS label), or an internal endpoint (`int:<owner> <host>`). */
interface Target {
  /** Cache key, and the stream's first line on the relay-to-relay link. */
  key: string
  /** The name or the port, as the store and presence keep it. */
  entry: string
  kind: PresenceKind
  /** Where the owner is learned; none for an internal endpoint, whose owner is `owner`. */
  store?: SharedNameStore
  owner?: string
  /** A link on this relay, when its agent came back here. */
  local(): { openStream(): Stream } | undefined
}

/** Announced when a relay starts or stops holding a TCP port: the others listen on it, or stop. */
const TCP_CHANNEL = `${KEY_PREFIX}tcp-ports`
/** `{relay, owner}`: a relay's agents of that owner started or stopped serving internal endpoints. */
const INTERNAL_CHANNEL = `${KEY_PREFIX}internal`

/** A name held by another relay: its owner, and a new stream to its agent through that relay. */
export interface RemoteTarget {
  owner: string
  openStream(): Stream
}

export type LocateResult =
  | { remote: RemoteTarget }
  | { missing: true }
  | { failure: [ErrorCode, string] }

export const DEFAULT_PRESENCE_TTL = 15_000
/** How long an agent's welcome waits for its names to be announced to the cluster. */
const ANNOUNCE_WAIT_MS = 2_000
/** A lookup is reused this long; a failed dial drops it at once. */
const LOOKUP_CACHE_MS = 1_000
/** A request for a name whose holder just died waits this long for its agent to reconnect. */
const HOLD_MS = 3_000
/** Lookups kept (for reuse, and as the last word while Redis is away), at most. */
const MAX_LOOKUPS = 50_000
/** Held names count as seen this often (their 7- and 90-day clocks start when the last agent leaves). */
const TOUCH_EVERY_MS = 10 * 60_000

interface CachedLookup {
  located: Located
  at: number
}

export class Cluster {
  readonly id = `relay-${randomBytes(6).toString('hex')}`
  readonly names: SharedNameStore
  /** TCP port owners, with the rules of names (tcp-ports.json on a lone relay). */
  readonly ports: SharedNameStore
  /** Per-token rps counted across the cluster. */
  readonly rates: GlobalRateLimiter
  /** Tokens and limits from config files, shared (cluster/shared-config.ts). */
  readonly config: ConfigShare
  /** ACME challenges, certificates, order locks and budget, shared (acme/shared-acme.ts). */
  readonly acme: SharedAcme
  /** This relay's own config file's tokens and limits, when it has one: shared at start, and again to a Redis that lost them. */
  ownConfig: { tokens: TokenEntry[]; limits: TokenLimits } | undefined
  private recheckConfig: (() => Promise<void>) | undefined
  private presence: Presence | undefined
  private peers: PeerServer | undefined
  private readonly pool: PeerPool
  private host: ClusterHost | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly lookups = new Map<string, CachedLookup>()
  /** Lookups on their way: concurrent requests for one name share one round trip. */
  private readonly pending = new Map<string, Promise<Located>>()
  private relayList: RelayRecord[] = []
  private lastTouch = 0
  private closing = false
  /** An internal list read in flight, and whether another must follow it (a change came meanwhile). */
  private internalRead: Promise<void> | undefined
  private internalAgain = false

  private constructor(private readonly backend: ClusterBackend, private readonly opts: ClusterOptions, private readonly secret: Buffer) {
    this.names = new SharedNameStore(backend, 'name', opts.maxNamesPerOwner)
    this.ports = new SharedNameStore(backend, 'port', opts.maxNamesPerOwner)
    this.rates = new GlobalRateLimiter(backend, opts.log)
    this.config = new ConfigShare(backend, this.id, opts.log)
    this.acme = clusterAcme(backend, this.id)
    this.pool = new PeerPool(secret, opts.heartbeatTimeout)
  }

  /**
   * Connect to Redis (or throw GW_ERR_RELAY_REDIS), or without `redis` to the primary
   * process of `--workers` (or throw GW_ERR_RELAY_WORKER_STATE), and read every name's owner.
   */
  static async open(opts: ClusterOptions): Promise<Cluster> {
    if (Buffer.byteLength(opts.secret) < 16) {
      throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', 'the cluster secret must be at least 16 bytes; give the same one to every relay (GW_RELAY_CLUSTER_SECRET or --cluster-secret-file), e.g. from `openssl rand -hex 32`')
    }
    const backend = opts.redis !== undefined
      ? new RedisBackend(await connectRedis(opts.redis, opts.log, opts.redisCa !== undefined ? { ca: opts.redisCa } : {}))
      : IpcBackend.connect()
    const cluster = new Cluster(backend, opts, Buffer.from(opts.secret))
    try {
      await cluster.names.load()
      await cluster.ports.load()
    } catch (err) {
      await backend.close()
      throw opts.redis !== undefined
        ? new RelayError('GW_ERR_RELAY_REDIS', `cannot read the names from Redis: ${(err as Error).message}`, { cause: err })
        : new RelayError('GW_ERR_RELAY_WORKER_STATE', `cannot read the names from the primary process: ${(err as Error).message}`, { cause: err })
    }
    return cluster
  }

  /** Listen for peers, announce this relay and its agents, and keep doing so. */
  async start(host: ClusterHost, agentUrls: string[]): Promise<void> {
    this.host = host
    const { hostname, port } = splitHostPort(this.opts.peerListen, '--cluster-addr')
    try {
      this.peers = await listenForPeers({
        host: hostname,
        port,
        secret: this.secret,
        heartbeatTimeout: this.opts.heartbeatTimeout,
        target: (line) => (line.startsWith('tcp:') ? host.tcp.routes.pick(line.slice(4)) : line.startsWith('int:') ? host.internal.pick(line.slice(4)) : host.routes.pick(line)),
        log: this.opts.log,
      })
    } catch (err) {
      throw new RelayError('GW_ERR_RELAY_LISTEN', `cannot listen for other relays on ${this.opts.peerListen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; pick another --cluster-addr`, { cause: err })
    }
    const advertise = this.opts.peerAdvertise ?? defaultAdvertise(hostname, this.peers.port)
    const ttl = this.opts.presenceTtl ?? DEFAULT_PRESENCE_TTL
    this.presence = new Presence(this.backend, { id: this.id, peer: advertise, agentUrls }, ttl)
    host.events.on('agent:connected', ({ names, ports = [] }) => {
      // The names were announced before the welcome (announceBeforeWelcome).
      const taken = takenOver(host.routes, names)
      const link = taken.length > 0 ? host.routes.linksOf(taken[0]!)[0] : undefined
      if (link?.owner) publishTakeover(this.backend, this.id, link.owner, taken, link.openedAt)
      if (ports.length === 0) return
      const held = ports.map(String)
      for (const port of held) this.lookups.delete(`tcp:${port}`)
      // Announced, then told: a relay that hears of the port finds this one holding it.
      this.presence?.announce(held, 'port').then(() => this.tellTcp('open', ports)).catch(() => {})
      const takenPorts = takenOver(host.tcp.routes, held)
      const portLink = takenPorts.length > 0 ? host.tcp.routes.linksOf(takenPorts[0]!)[0] : undefined
      if (portLink?.owner) publishTakeover(this.backend, this.id, portLink.owner, takenPorts, portLink.openedAt, true)
    })
    host.events.on('agent:disconnected', ({ names, ports = [] }) => {
      // The route table drops the link after this event: look once it has.
      setImmediate(() => {
        const gone = names.filter((n) => !host.routes.has(n))
        if (gone.length > 0) this.presence?.withdraw(gone).catch(() => {})
        const gonePorts = ports.filter((p) => !host.tcp.routes.has(String(p)))
        if (gonePorts.length > 0) this.presence?.withdraw(gonePorts.map(String), 'port').then(() => this.tellTcp('close', gonePorts)).catch(() => {})
      })
    })
    host.internal.attachCluster({
      locate: (owner, internalHost) => this.locateInternal(owner, internalHost),
      changed: (owner, added, removed) => this.internalChanged(owner, added, removed),
      wanted: () => this.readInternal(),
    })
    this.backend.onReturn(() => void this.reRegister())
    try {
      await listenForTakeovers(this.backend, this.id, host.routes, host.tcp.routes, (name, links, tcp) => this.drop(name, links, tcp))
      await this.backend.subscribe(TCP_CHANNEL, (raw) => this.onTcpMessage(raw))
      await this.backend.subscribe(INTERNAL_CHANNEL, (raw) => this.onInternalMessage(raw))
      this.recheckConfig = (await this.config.follow((doc) => host.applyConfig(doc))).recheck
    } catch (err) {
      throw new RelayError(this.opts.redis !== undefined ? 'GW_ERR_RELAY_REDIS' : 'GW_ERR_RELAY_WORKER_STATE', `cannot subscribe to the cluster's takeover channel in ${this.backend.describe}: ${(err as Error).message}`, { cause: err })
    }
    if (this.ownConfig) {
      await this.config.publish(this.ownConfig.tokens, this.ownConfig.limits).catch((err: Error) => {
        this.opts.log('warn', 'the config file\'s tokens and limits could not be shared with the cluster', { error: err.message })
      })
    }
    await this.beat()
    this.timer = setInterval(() => void this.beat(), Math.max(100, Math.floor(ttl / 3)))
    this.timer.unref()
  }

  private async beat(): Promise<void> {
    const host = this.host
    const presence = this.presence
    if (!host || !presence || this.closing) return
    try {
      const { names: held, ports: heldPorts } = await presence.refresh(() => host.routes.names(), () => host.tcp.routes.names(), () => host.internal.entries())
      this.relayList = await presence.relays()
      if (Date.now() - this.lastTouch > TOUCH_EVERY_MS) {
        this.lastTouch = Date.now()
        this.names.touch(held)
        this.ports.touch(heldPorts)
      }
      await this.reconcileTcp()
      // A relay that died without a word: its entries ran out, and this read drops them.
      await this.readInternal()
    } catch { /* Redis is away: connectRedis logs it, and reRegister runs when it returns */ }
  }

  /** This relay's agents of `owner` started serving `added` and stopped serving `removed`: presence, then the others told. */
  private internalChanged(owner: string, added: string[], removed: string[]): void {
    const presence = this.presence
    if (!presence || this.closing) return
    const entry = (h: string): string => `${owner} ${h}`
    for (const h of added) this.lookups.delete(`int:${entry(h)}`)
    Promise.all([presence.announce(added.map(entry), 'internal'), presence.withdraw(removed.map(entry), 'internal')])
      .then(() => this.backend.publish(INTERNAL_CHANNEL, JSON.stringify({ relay: this.id, owner })))
      .catch(() => { /* the shared state is away: the heartbeat after its return announces them */ })
  }

  private onInternalMessage(raw: string): void {
    let message: { owner?: unknown }
    try {
      message = JSON.parse(raw) as typeof message
    } catch {
      return
    }
    if (typeof message.owner !== 'string') return
    // A lookup made before the change (no holder yet, or the one that just left) is stale.
    const prefix = `int:${message.owner} `
    for (const key of this.lookups.keys()) if (key.startsWith(prefix)) this.lookups.delete(key)
    // Only owners with an agent here have a list to keep.
    if (this.host?.internal.owners().includes(message.owner)) void this.readInternal()
  }

  /**
   * Read every internal endpoint the cluster holds and give each owner with an agent here
   * its hosts. One read at a time; a change that comes during one gets one more after it.
   */
  private readInternal(): Promise<void> {
    if (this.internalRead) {
      this.internalAgain = true
      return this.internalRead
    }
    const run = async (): Promise<void> => {
      const host = this.host
      const presence = this.presence
      if (!host || !presence || this.closing) return
      const owners = host.internal.owners()
      if (owners.length === 0) return
      const byOwner = new Map<string, string[]>(owners.map((o) => [o, []]))
      for (const entry of await presence.live('internal')) {
        const space = entry.indexOf(' ')
        byOwner.get(entry.slice(0, space))?.push(entry.slice(space + 1))
      }
      for (const [owner, hosts] of byOwner) host.internal.setClusterHosts(owner, hosts)
    }
    this.internalRead = (async () => {
      try {
        do {
          this.internalAgain = false
          await run().catch(() => { /* the shared state is away: the last lists stand */ })
        } while (this.internalAgain)
      } finally {
        this.internalRead = undefined
      }
    })()
    return this.internalRead
  }

  /** Listen on every port the cluster holds, and on no other (the messages may have been missed). */
  private async reconcileTcp(): Promise<void> {
    const tcp = this.host?.tcp
    if (!tcp || !this.presence) return
    const live = new Set((await this.presence.live('port')).map(Number))
    for (const port of live) tcp.forward(port)
    for (const port of tcp.forwarded()) if (!live.has(port)) tcp.unforward(port)
  }

  private tellTcp(op: 'open' | 'close', ports: number[]): void {
    this.backend.publish(TCP_CHANNEL, JSON.stringify({ relay: this.id, op, ports })).catch(() => {
      // The shared state is away: the next heartbeat's reconciliation catches up.
    })
  }

  private onTcpMessage(raw: string): void {
    let message: { op?: unknown; ports?: unknown }
    try {
      message = JSON.parse(raw) as typeof message
    } catch {
      return
    }
    const tcp = this.host?.tcp
    if (!tcp || !Array.isArray(message.ports)) return
    const ports = message.ports.filter((p): p is number => Number.isInteger(p) && p > 0 && p < 65536)
    if (message.op === 'open') for (const port of ports) tcp.forward(port)
    if (message.op !== 'close') return
    // Another relay may still hold it (a pool across relays): ask presence before closing.
    for (const port of ports) {
      this.lookups.delete(`tcp:${port}`)
      this.presence?.locate(String(port), 'port').then(
        (located) => {
          if (located.holders.length === 0) tcp.unforward(port)
        },
        () => {},
      )
    }
  }

  /** Another relay's agent took `name` (or the port) over: these links here lose it, as on one relay. */
  private drop(name: string, links: AgentLink[], tcp = false): void {
    const host = this.host!
    for (const link of links) {
      if (tcp) host.tcp.remove(Number(name), link)
      else host.routes.remove(name, link)
      link.endpoints = link.endpoints.filter((e) => e.name !== name || (e.proto === 'tcp') !== tcp)
      this.opts.log('info', tcp ? 'another relay took the TCP port over' : 'another relay took the name over', { name, remote: link.remoteAddress })
      if (link.endpoints.length === 0) link.notifyAndClose('GW_ERR_REPLACED', `a new connection, through another relay of the cluster, took over ${tcp ? `TCP port ${name}` : name}`)
    }
    if (tcp) return
    if (!host.routes.has(name)) this.presence?.withdraw([name]).catch(() => {})
  }

  /** Redis came back (maybe empty): this relay's record, presence and claims again. */
  private async reRegister(): Promise<void> {
    const host = this.host
    if (!host || this.closing) return
    await this.beat()
    // A Redis that lost the shared config gets this relay's again; else a change made while away is taken.
    const doc = await this.config.read().catch(() => undefined)
    if (!doc && this.ownConfig) await this.config.publish(this.ownConfig.tokens, this.ownConfig.limits).catch(() => {})
    else await this.recheckConfig?.().catch(() => {})
    for (const link of host.links) {
      if (!link.owner || link.closed) continue
      for (const { name, proto } of link.endpoints) {
        await (proto === 'tcp' ? this.ports : this.names).claim(name, link.owner).catch((err: Error) => {
          this.opts.log('warn', `a ${proto === 'tcp' ? 'TCP port' : 'name'} held here could not be claimed again after Redis returned`, { name, error: err.message })
        })
      }
    }
    // The beat announced this relay's internal endpoints again; the others hear of them.
    for (const owner of new Set(host.internal.entries().map((e) => e.slice(0, e.indexOf(' '))))) {
      this.backend.publish(INTERNAL_CHANNEL, JSON.stringify({ relay: this.id, owner })).catch(() => {})
    }
  }

  /**
   * Agent URLs of every live relay of the cluster, for an agent to fail over to: read
   * again when the list is older than a second (a relay that just joined is in it),
   * else, and when Redis is away, the last list.
   */
  /**
   * Announces the names an agent is about to be welcomed for (its routes are already in
   * place here). Bounded: with Redis away the welcome goes on after ANNOUNCE_WAIT_MS, and
   * the next heartbeat announces the names once it is back.
   */
  announceBeforeWelcome(names: string[]): Promise<void> | undefined {
    const presence = this.presence
    if (!presence || names.length === 0) return undefined
    for (const name of names) this.lookups.delete(name)
    let timer: NodeJS.Timeout | undefined
    return Promise.race([
      presence.announce(names).catch(() => {}),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, ANNOUNCE_WAIT_MS).unref() }),
    ]).finally(() => clearTimeout(timer))
  }

  async agentUrls(): Promise<string[]> {
    // Read for every welcome, not reused for a second: an agent welcomed just after this
    // relay read the list, and before another relay joined, never learned that one, and
    // had nowhere to go when this relay died (relay-cluster-kill, once in the soak). One
    // read per admission, beside the claims and the announce it already makes.
    if (this.presence) {
      try {
        this.relayList = await this.presence.relays()
      } catch { /* the last list */ }
    }
    const urls = new Set<string>(this.presence?.record.agentUrls ?? [])
    for (const record of this.relayList) for (const url of record.agentUrls) urls.add(url)
    return [...urls]
  }

  /**
   * Find the relay that holds `name` and a link to it. Never rejects: `missing` when no
   * live relay holds it (the store's `owner` then says whether anyone owns it),
   * `failure` when Redis cannot be asked and nothing was seen before.
   */
  async locate(name: string): Promise<LocateResult> {
    return this.find({ key: name, entry: name, kind: 'name', store: this.names, local: () => this.host?.routes.pick(name) })
  }

  /**
   * The relay whose agent of `owner` serves internal endpoint `host` (`api.internal`, or
   * `tcp://camera.internal:22`), and a stream to that agent through it. Only `owner`'s:
   * the entry, and the line the holder reads, carry the owner.
   */
  async locateInternal(owner: string, host: string): Promise<LocateResult> {
    const entry = `${owner} ${host}`
    return this.find({ key: `int:${entry}`, entry, kind: 'internal', owner, local: () => this.host?.internal.pick(entry) })
  }

  /** The relay that holds TCP port `port`, and a stream to its agent through it. */
  async locatePort(port: number): Promise<LocateResult> {
    const entry = String(port)
    return this.find({ key: `tcp:${entry}`, entry, kind: 'port', store: this.ports, local: () => this.host?.tcp.routes.pick(entry) })
  }

  private async find(target: Target): Promise<LocateResult> {
    let located: Located
    const cached = this.lookups.get(target.key)
    if (cached && Date.now() - cached.at < LOOKUP_CACHE_MS) {
      located = cached.located
    } else {
      try {
        located = await this.lookup(target)
      } catch (err) {
        // Redis is away: what was seen last is the best there is.
        const what = target.kind === 'port' ? `TCP port ${target.entry}` : target.kind === 'internal' ? target.entry.slice(target.entry.indexOf(' ') + 1) : target.entry
        if (!cached) return { failure: ['GW_ERR_CLUSTER_UNAVAILABLE', `the relay cannot look up ${what} in the cluster's shared state (${this.backend.describe}) right now: ${(err as Error).message}`] }
        located = cached.located
      }
    }
    const owner = target.owner ?? located.owner
    if (owner === undefined) return { missing: true }
    const found = await this.reach(target, owner, located)
    if (found) return { remote: found }
    // Presence names a holder, but none answers: a relay has just died, and its agents are
    // reconnecting to the others. Hold the request a little for the agent to come back.
    if (located.holders.some((h) => h.record.id !== this.id)) return this.awaitAgent(target, owner)
    return { missing: true }
  }

  /** A stream opener through the first holder that answers, or undefined. */
  private async reach(target: Target, owner: string, located: Located): Promise<RemoteTarget | undefined> {
    for (const holder of located.holders) {
      if (holder.record.id === this.id) continue
      try {
        const session = await this.pool.session(holder.record.peer)
        if (session.closed || session.peerGoingAway) continue
        return { owner, openStream: () => PeerPool.open(session, target.key) }
      } catch {
        // That relay is gone: the next lookup asks Redis again.
        this.lookups.delete(target.key)
      }
    }
    return undefined
  }

  /**
   * Wait up to HOLD_MS for the agent of the target to reconnect, here (checked every 100 ms)
   * or on another relay (Redis asked again every 500 ms); then `missing`.
   */
  private async awaitAgent(target: Target, owner: string): Promise<LocateResult> {
    const deadline = Date.now() + HOLD_MS
    let nextLookup = Date.now() + 500
    while (Date.now() < deadline && !this.closing) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      const link = target.local()
      if (link) return { remote: { owner, openStream: () => link.openStream() } }
      if (Date.now() < nextLookup) continue
      nextLookup = Date.now() + 500
      this.lookups.delete(target.key)
      try {
        const found = await this.reach(target, owner, await this.lookup(target))
        if (found) return { remote: found }
      } catch { /* Redis is away: keep waiting for the agent here */ }
    }
    return { missing: true }
  }

  private lookup(target: Target): Promise<Located> {
    const { key } = target
    let pending = this.pending.get(key)
    if (!pending) {
      pending = this.presence!.locate(target.entry, target.kind).then((located) => {
        // Bounded: a scanner asking for random names must not grow it without end.
        if (this.lookups.size >= MAX_LOOKUPS && !this.lookups.has(key)) this.lookups.delete(this.lookups.keys().next().value!)
        this.lookups.set(key, { located, at: Date.now() })
        target.store?.learn(target.entry, located.owner)
        return located
      }).finally(() => this.pending.delete(key))
      this.pending.set(key, pending)
    }
    return pending
  }

  /** The address other relays dial for this one. */
  get peerAddress(): string | undefined {
    return this.presence?.record.peer
  }

  async close(): Promise<void> {
    this.closing = true
    clearInterval(this.timer)
    const held = this.host?.routes.names() ?? []
    const heldPorts = this.host?.tcp.routes.names() ?? []
    const heldInternal = this.host?.internal.entries() ?? []
    await this.presence?.leave(held, heldPorts, heldInternal).catch(() => {})
    if (heldPorts.length > 0) this.tellTcp('close', heldPorts.map(Number))
    for (const owner of new Set(heldInternal.map((e) => e.slice(0, e.indexOf(' '))))) {
      await this.backend.publish(INTERNAL_CHANNEL, JSON.stringify({ relay: this.id, owner })).catch(() => {})
    }
    this.pool.close()
    await this.peers?.close()
    await this.backend.close()
  }
}

function splitHostPort(value: string, flag: string): { hostname: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(value)
  const port = m ? Number(m[2]) : NaN
  if (!m || !m[1] || port > 65535) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `${flag} "${value}" is not host:port; give e.g. 10.0.0.5:7400`)
  }
  return { hostname: m[1], port }
}

function defaultAdvertise(host: string, port: number): string {
  if (host !== '0.0.0.0' && host !== '::') return `${host.includes(':') ? `[${host}]` : host}:${port}`
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return `${a.address}:${port}`
  }
  throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `this machine has no address other relays could reach; give --cluster-advertise host:port`)
}
