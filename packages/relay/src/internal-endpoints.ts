/**
 * Internal endpoints across agents: ngrok's `forward-internal` to `https://api.internal`
 * served by another agent of the same authtoken on this relay.
 *
 *   agent A ──stream "api.internal\n" + request──▶ relay ──splice──▶ agent B (serves api.internal)
 *
 * Internal endpoints are never public: no Host reaches them, and only the agents of the
 * token whose agent serves one can call it. Each agent says which internal endpoints it
 * serves (INTERNAL_ENDPOINTS, agent → relay), and the relay tells every agent of the token
 * which ones are online (INTERNAL_ENDPOINTS, relay → agent), so the agent's policy knows
 * at once whether a forward-internal has somewhere to go (its `on_error: continue`
 * fallback needs the answer before the request is sent).
 *
 * A request goes as the relay's own requests go to an agent: agent A writes the host on
 * a line, then the request head and body as the relay would; the relay splices the rest
 * onto a new stream to agent B without decoding it. It counts against the token's
 * streams and rps limits like any request. Agents of one token trust each other as
 * ngrok's endpoints of one account do: B sees the request head A wrote (the original
 * client's address included).
 *
 * tcp and tls internal endpoints (`tcp://camera.internal:22`, `tls://db.internal:443`) come
 * in the message's `raw` list and are routed by scheme and host, apart from the HTTP
 * hosts. Their stream's line is `tcp://camera.internal:22`; what follows (a TCP_HEAD, then
 * the client connection's bytes) is spliced as it is, both ways, half-closes included.
 *
 * In a cluster (`--redis`, or `--workers N`), the internal endpoint may be served by an
 * agent on another relay: each relay announces the `<owner> <host>` entries its agents
 * serve as presence (kind `internal`, cluster/presence.ts), the list each agent is told
 * is its token's entries across the cluster, and a request for one no agent here serves
 * goes over the relay-to-relay link (cluster/peer-link.ts, line `int:<owner> <host>`) to
 * the relay that has it, which splices it onto its agent's stream, as a public name's
 * request is forwarded. The owner on that line is the calling agent's, so another token
 * never reaches the endpoint through any relay.
 */
import { ErrorCodes, INTERNAL_HOST_PATTERN, INTERNAL_RAW_TARGET_PATTERN, MessageWriter, type ErrorCode, type InternalEndpoint, type InternalEndpoints, type RawInternalEndpoint, type Stream } from '@gw/protocol'
import type { AccessControl } from './access.js'
import type { AgentLink } from './agent-link.js'
import { RouteTable } from './routes.js'
import { readFirstLine, splice } from './stream-line.js'

/** Where an internal request for a host no agent here serves goes: another relay's agent, or why not. */
export type InternalLocateResult =
  | { remote: { openStream(): Stream } }
  | { missing: true }
  | { failure: [ErrorCode, string] }

/** What the table asks of a cluster (cluster/cluster.ts). */
export interface InternalClusterSide {
  /** A stream to the agent of `owner` that serves `host` on another relay of the cluster. */
  locate(owner: string, host: string): Promise<InternalLocateResult>
  /** This relay's agents of `owner` serve these hosts now, and no longer those. */
  changed(owner: string, added: string[], removed: string[]): void
  /** An agent of an owner with no other agent here joined: its list is wanted now. */
  wanted(owner: string): void
}

/** `<labels>.internal:<port>` fits in this, with room. */
const MAX_LINE = 300
/** The line follows the stream's SYN at once; a stream that says nothing is reset. */
const LINE_TIMEOUT_MS = 10_000

export class InternalEndpointTable {
  /** `<owner> <host>` → the links serving it (pooled when they asked). */
  private readonly routes = new RouteTable()
  /** owner → its admitted links: the ones told about its internal endpoints. */
  private readonly members = new Map<string, Set<AgentLink>>()
  /** link → the hosts it serves now. */
  private readonly served = new Map<AgentLink, string[]>()
  /** owner → the hosts its agents serve anywhere in the cluster (this relay's too), as the cluster last said. */
  private readonly clusterHosts = new Map<string, Set<string>>()
  private cluster: InternalClusterSide | undefined

  constructor(private readonly access: AccessControl) {}

  /** This relay is one of a cluster: internal endpoints are announced, listed and reached across it. */
  attachCluster(side: InternalClusterSide): void {
    this.cluster = side
  }

  /** `<owner> <host>` of every internal endpoint this relay's agents serve: the cluster's presence entries. */
  entries(): string[] {
    return this.routes.names()
  }

  /** Owners with an admitted agent here: the ones whose cluster-wide list is kept. */
  owners(): string[] {
    return [...this.members.keys()]
  }

  /**
   * The cluster says `owner`'s agents serve `hosts` (on any relay, this one included).
   * Agents of the owner here are told when that changes what they may reach.
   */
  setClusterHosts(owner: string, hosts: Iterable<string>): void {
    const next = new Set(hosts)
    const before = this.clusterHosts.get(owner)
    if (next.size === 0) this.clusterHosts.delete(owner)
    else this.clusterHosts.set(owner, next)
    const same = before !== undefined ? before.size === next.size && [...next].every((h) => before.has(h)) : next.size === 0
    if (!same) this.notify(owner)
  }

  /** The link here that serves `<owner> <host>` (a stream from another relay of the cluster). */
  pick(entry: string): AgentLink | undefined {
    return this.routes.pick(entry)
  }

  /** An admitted agent: it may announce internal endpoints, open internal requests, and is told its token's. */
  join(link: AgentLink): void {
    let links = this.members.get(link.owner)
    if (!links) this.members.set(link.owner, (links = new Set()))
    links.add(link)
    link.onInternalEndpoints = (message) => this.announce(link, message.endpoints, message.raw ?? [])
    link.onAgentStream = (stream) => this.serve(link, stream)
    if (links.size === 1) this.cluster?.wanted(link.owner)
    const online = this.online(link.owner)
    if (online.endpoints.length > 0 || (online.raw?.length ?? 0) > 0) link.internalEndpoints(online)
  }

  /** The agent's link closed. */
  leave(link: AgentLink): void {
    link.onAgentStream = undefined
    link.onInternalEndpoints = undefined
    const links = this.members.get(link.owner)
    links?.delete(link)
    if (links?.size === 0) {
      this.members.delete(link.owner)
      this.clusterHosts.delete(link.owner)
    }
    const before = this.hostsHere(link.owner)
    if (this.withdraw(link)) {
      this.tellCluster(link.owner, before)
      this.notify(link.owner)
    }
  }

  /** Hosts of internal endpoints online for `owner`, for tests and the relay's own view. */
  hostsOf(owner: string): string[] {
    const online = this.online(owner)
    return [...online.endpoints.map((e) => e.host), ...(online.raw ?? []).map((e) => `${e.proto}://${e.host}`)]
  }

  /** The agent's INTERNAL_ENDPOINTS: its whole set, replacing the last one. */
  private announce(link: AgentLink, endpoints: InternalEndpoint[], raw: RawInternalEndpoint[]): void {
    if (link.closed) return
    const before = this.hostsHere(link.owner)
    this.withdraw(link)
    const hosts: string[] = []
    // A tcp or tls one is routed as `tcp://host:port`, which no HTTP host can be.
    const all = [...endpoints, ...raw.map((e) => ({ host: `${e.proto}://${e.host}`, pooling: e.pooling }))]
    for (const { host, pooling } of all) {
      if (hosts.includes(host)) continue
      hosts.push(host)
      // As with names: the same token's newcomer takes the host over unless both pool.
      const change = this.routes.add(key(link.owner, host), link, pooling === true)
      for (const previous of change.replaced) {
        const left = this.served.get(previous)?.filter((h) => h !== host)
        if (left) this.served.set(previous, left)
      }
    }
    this.served.set(link, hosts)
    this.tellCluster(link.owner, before)
    this.notify(link.owner)
  }

  /** The hosts `owner`'s agents on this relay serve. */
  private hostsHere(owner: string): Set<string> {
    const prefix = `${owner} `
    return new Set(this.routes.names().filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)))
  }

  /** The cluster hears which hosts of `owner` this relay started and stopped serving. */
  private tellCluster(owner: string, before: Set<string>): void {
    if (!this.cluster) return
    const after = this.hostsHere(owner)
    const added = [...after].filter((h) => !before.has(h))
    const removed = [...before].filter((h) => !after.has(h))
    if (added.length > 0 || removed.length > 0) this.cluster.changed(owner, added, removed)
  }

  /** Take the link's routes away; true when it served any. */
  private withdraw(link: AgentLink): boolean {
    const hosts = this.served.get(link)
    if (!hosts) return false
    this.served.delete(link)
    for (const host of hosts) this.routes.remove(key(link.owner, host), link)
    return hosts.length > 0
  }

  private online(owner: string): InternalEndpoints {
    const endpoints: InternalEndpoint[] = []
    const raw: RawInternalEndpoint[] = []
    // This relay's, then the rest of the cluster's.
    const hosts = this.hostsHere(owner)
    for (const host of this.clusterHosts.get(owner) ?? []) hosts.add(host)
    for (const host of hosts) {
      const m = /^(tcp|tls):\/\/(.*)$/.exec(host)
      if (m) raw.push({ proto: m[1] as 'tcp' | 'tls', host: m[2]! })
      else endpoints.push({ host })
    }
    return raw.length > 0 ? { endpoints, raw } : { endpoints }
  }

  private notify(owner: string): void {
    const links = this.members.get(owner)
    if (!links) return
    const online = this.online(owner)
    for (const link of links) link.internalEndpoints(online)
  }

  /** A stream agent `from` opened: the host on a line, then a request for it (or `tcp://host:port`, then a connection). */
  private serve(from: AgentLink, stream: Stream): void {
    readFirstLine(stream, MAX_LINE, LINE_TIMEOUT_MS, (host) => {
      const raw = INTERNAL_RAW_TARGET_PATTERN.test(host)
      if (!raw && !INTERNAL_HOST_PATTERN.test(host)) {
        stream.destroy()
        return
      }
      const fail = (code: ErrorCode, message: string): void => {
        // A connection has no answer to write: the reset closes it (the agent logs why).
        if (raw) return void stream.destroy()
        // Read the request to its end so the stream closes both ways.
        stream.resume()
        new MessageWriter(stream).error(code, message, ErrorCodes[code].status)
      }
      const forward = (target: { openStream(): Stream }): void => {
        const gate = this.access.startRequest(from.owner)
        if (!gate.ok) return fail(gate.code, gate.detail)
        let out: Stream
        try {
          out = target.openStream()
        } catch (err) {
          gate.release()
          return fail('GW_ERR_RELAY_OVERLOADED', `the agent serving ${host} cannot take a new request: ${(err as Error).message}`)
        }
        out.once('close', gate.release)
        splice(stream, out)
      }
      const target = this.routes.pick(key(from.owner, host))
      if (target) return forward(target)
      const cluster = this.cluster
      if (!cluster) return fail('GW_ERR_INTERNAL_ENDPOINT_OFFLINE', `no agent of this authtoken serves ${host} on the relay now`)
      // Another relay of the cluster may have it: the request waits (paused) for the lookup.
      cluster.locate(from.owner, host).then((found) => {
        if (stream.destroyed) return
        if ('remote' in found) return forward(found.remote)
        if ('failure' in found) return fail(found.failure[0], found.failure[1])
        fail('GW_ERR_INTERNAL_ENDPOINT_OFFLINE', `no agent of this authtoken serves ${host} on any relay of the cluster now`)
      }, (err: Error) => fail('GW_ERR_CLUSTER_UNAVAILABLE', `the relay cannot look up ${host} in the cluster right now: ${err.message}`))
    })
  }
}

/** `<owner> <host>`: the route key here, and the presence entry in the cluster. */
export function key(owner: string, host: string): string {
  return `${owner} ${host}`
}
