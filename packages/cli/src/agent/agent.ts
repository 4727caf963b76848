/**
 * The agent: keeps one connection to the relay up and serves every stream the relay
 * opens on it.
 *
 * The first connection must succeed, or `startAgent` rejects with the reason (a wrong
 * token, a name held by someone else, an unreachable relay). After that the agent
 * reconnects forever, with exponential backoff and jitter, asking for the names it was
 * given, so the public URLs stay the same across relay restarts and network drops.
 */
import { randomBytes } from 'node:crypto'
import type { Agent as UndiciAgent } from 'undici'
import {
  CodedError,
  GwError,
  type ErrorCode,
  MessageType,
  decodeJson,
  checkCodedMessage,
  checkCacheHit,
  checkInternalEndpoints,
  MessageWriter,
  type CacheHit,
  PROTOCOL_VERSION,
  LINK_DEFAULTS,
  maxHeadMessageFor,
  type EndpointProto,
  type EndpointRequest,
  type Hello,
  type InternalEndpoints,
  type Session,
  terminateTlsDigest,
} from '@gw/protocol'
import { AgentEvents, type AgentStatus, type TunnelInfo, type TunnelStatus } from './events.js'
import { CliError, type CliErrorCode } from '../errors.js'
import { connectRelay, type RelayConnection } from './relay-connection.js'
import { RelayList } from './relay-list.js'
import { serveStream } from './pipeline.js'
import { Recorder } from './recorder.js'
import type { AgentRuntime, EndpointRuntime } from './request-context.js'
import { createUpstreamDispatcher, Http2Upstream, parseTcpUpstream, parseUpstream, type UpstreamProtocol } from '../upstream/index.js'
import { replayRequest, type ReplayRequest } from './replay.js'
import { internalRequest, type InternalRequest } from './internal-request.js'
import { RemoteInternalEndpoints } from './remote-internal.js'
import { VERSION } from '../version.js'
import { PolicyRuntimeError, type CompiledPolicy } from '../policy/index.js'

export interface AgentEndpointOptions {
  /** The endpoint's name in the agent; `command_line` for `gw http`. */
  name?: string
  /** The public name to ask for; random when omitted. */
  publicName?: string
  /** A full host to ask for (`app.tunnel.example.com`); the relay refuses one outside its domain. */
  publicHost?: string
  /** Share the name with other agents (ngrok's `--pooling-enabled`). */
  pooling?: boolean
  /** http (the default) carries requests; tcp and tls carry raw connections (`gw tcp`, `gw tls`). */
  proto?: EndpointProto
  /** A tcp endpoint's public port to ask for (`--url tcp://host:20001`); one from the relay's range when omitted. */
  remotePort?: number
  /** Let the relay answer from its shared cache (`--relay-cache`). */
  relayCache?: boolean
  upstream: string
  /** `http2`: h2c (or h2 over TLS) to the upstream, for gRPC (`--upstream-protocol`). Default `http1`. */
  upstreamProtocol?: UpstreamProtocol
  hostHeader?: string
  inspect?: boolean
  /** A compiled traffic policy; the agent closes it when it stops. */
  policy?: CompiledPolicy
  /**
   * An internal endpoint (`api.internal`, or `api.internal:8080`; for a tcp or tls one its
   * URL, `tcp://camera.internal:22` or `tls://db.internal:443`): no public URL, reached
   * only by forward-internal and http-request from this agent's other endpoints and, through
   * the relay, from its authtoken's other agents there (remote-internal.ts).
   */
  internalHost?: string
}

export interface AgentOptions {
  relay: string
  authtoken?: string
  /** PEM to trust for the relay's certificate. */
  relayCa?: string
  /** Stable id for name ownership on anonymous relays; random per process when omitted. */
  agentId?: string
  endpoints: AgentEndpointOptions[]
  events?: AgentEvents
  /**
   * Make an Exchange record of every request on `events` (the inspector, the TUI and
   * the request log lines need them). Off by default: without it a request emits
   * nothing and allocates no record. Replays are always recorded.
   */
  record?: boolean
  /** Time without an answer to a heartbeat after which the relay counts as gone, ms. Default 15 s. */
  heartbeatTimeout?: number
  handshakeTimeout?: number
  /** Time for the upstream's response head, ms; then 504. Default 60 s. */
  responseTimeout?: number
  /** Time a response body may stay silent, ms; 0 never times out. Default 5 min. */
  bodyIdleTimeout?: number
  upstreamTlsVerify?: boolean
  maxHeaderSize?: number
  /** Shown in status: the embedded local-only relay is in use. */
  embedded?: boolean
  /** Reconnect delays, ms. */
  backoff?: { initial: number; max: number }
  /**
   * On close(), time the requests in flight get to finish, ms. The agent first sends a
   * GoAway, so the relay sends new requests to the other agents of a pool, and serves
   * every request the relay sent before it heard. 0 (the default) closes at once.
   */
  drainTimeout?: number
}

export interface Agent {
  readonly events: AgentEvents
  readonly tunnels: TunnelInfo[]
  status(): AgentStatus
  /** Request streams open now (the control stream not counted). */
  openStreams(): number
  replay(request: ReplayRequest, replayOf: string, tunnel: string): Promise<void>
  /** Resolves when the agent stops for good: with the fatal error, or undefined after close(). */
  readonly done: Promise<CodedError | undefined>
  close(): Promise<void>
}

const FATAL: ReadonlySet<string> = new Set<ErrorCode | CliErrorCode>([
  'GW_ERR_AUTH_INVALID', 'GW_ERR_AUTH_REQUIRED', 'GW_ERR_AUTH_REVOKED', 'GW_ERR_NAME_TAKEN', 'GW_ERR_NAME_INVALID',
  'GW_ERR_NAME_RESERVED', 'GW_ERR_DOMAIN_NOT_SERVED', 'GW_ERR_HANDSHAKE_VERSION', 'GW_ERR_REPLACED', 'GW_ERR_RELAY_CERT_UNTRUSTED',
  'GW_ERR_TCP_DISABLED', 'GW_ERR_TLS_DISABLED', 'GW_ERR_TCP_PORT_TAKEN', 'GW_ERR_CUSTOM_DOMAIN_UNVERIFIED',
  'GW_ERR_RELAY_NO_TERMINATE_TLS', 'GW_ERR_TERMINATE_TLS_INVALID', 'GW_ERR_TERMINATE_TLS_MISMATCH',
])

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const events = options.events ?? new AgentEvents()
  const heartbeatTimeout = options.heartbeatTimeout ?? LINK_DEFAULTS.heartbeatTimeout
  const handshakeTimeout = options.handshakeTimeout ?? LINK_DEFAULTS.handshakeTimeout
  const responseTimeout = options.responseTimeout ?? 60_000
  const maxHeaderSize = options.maxHeaderSize ?? LINK_DEFAULTS.maxHeaderSize
  const backoff = options.backoff ?? { initial: 500, max: 30_000 }
  const tlsVerify = options.upstreamTlsVerify ?? false

  const clientOptions = {
    tlsVerify,
    responseTimeout,
    bodyIdleTimeout: options.bodyIdleTimeout ?? 300_000,
    maxHeaderSize,
  }
  const dispatcher: UndiciAgent = createUpstreamDispatcher(clientOptions)
  // One more, only when an endpoint speaks HTTP/2 to its upstream.
  const http2Upstream = options.endpoints.some((e) => e.upstreamProtocol === 'http2') ? new Http2Upstream(clientOptions) : undefined
  const closeDispatchers = async (): Promise<void> => {
    await Promise.all([dispatcher.close().catch(() => {}), http2Upstream?.close()])
  }

  const all: EndpointRuntime[] = options.endpoints.map((e, i) => ({
    name: e.name ?? (i === 0 ? 'command_line' : `endpoint_${i}`),
    publicName: e.publicName ?? '',
    proto: e.proto ?? 'http',
    remotePort: e.remotePort,
    upstream: e.proto === 'tcp' || e.proto === 'tls' ? parseTcpUpstream(e.upstream) : parseUpstream(e.upstream),
    upstreamProtocol: e.upstreamProtocol ?? 'http1',
    dispatcher: e.upstreamProtocol === 'http2' ? http2Upstream!.asDispatcher() : dispatcher,
    hostHeader: e.hostHeader,
    inspect: e.inspect ?? true,
    policy: e.policy,
    ...(e.policy?.terminateTls && (e.proto ?? 'http') === 'http' && e.internalHost === undefined
      ? { terminateTls: { request: e.policy.terminateTls, digest: terminateTlsDigest(e.policy.terminateTls) } }
      : {}),
  }))
  // Internal endpoints get no public name: the relay hears of them after the welcome (INTERNAL_ENDPOINTS).
  const publicOptions = options.endpoints.filter((e) => e.internalHost === undefined)
  const endpoints = all.filter((_, i) => options.endpoints[i]!.internalHost === undefined)
  const internal = new Map<string, EndpointRuntime>()
  /** host → whether it asked for pooling: what the relay is told (INTERNAL_ENDPOINTS). */
  const internalPooling = new Map<string, boolean>()
  /** tcp and tls internal endpoints, by URL (`tcp://camera.internal:22`): forward-internal's targets in on_tcp_connect. */
  const rawInternal = new Map<string, EndpointRuntime>()
  options.endpoints.forEach((e, i) => {
    if (e.internalHost === undefined) return
    const host = e.internalHost.toLowerCase()
    // Its requests come through forward-internal, never over a TLS connection of its own: a terminate-tls would be skipped.
    if (e.policy?.terminateTls && (e.proto ?? 'http') === 'http') {
      throw new CliError('GW_ERR_CONFIG', `the internal endpoint ${host} has terminate-tls in on_tcp_connect, which runs on a public https endpoint's connections only; an internal endpoint is reached through forward-internal and has no TLS connection of its own: put terminate-tls on the public endpoint that forwards to it`)
    }
    if (e.proto === 'tcp' || e.proto === 'tls') {
      if (!host.startsWith(`${e.proto}://`)) throw new CliError('GW_ERR_CONFIG', `a ${e.proto} internal endpoint's URL is ${e.proto}://<name>.internal:<port>, got ${host}`)
      if (rawInternal.has(host)) throw new CliError('GW_ERR_CONFIG', `two internal endpoints have the URL ${host}; give each its own`)
      rawInternal.set(host, all[i]!)
      internalPooling.set(host, e.pooling === true)
      return
    }
    if (internal.has(host)) throw new CliError('GW_ERR_CONFIG', `two internal endpoints have the URL ${host}; give each its own`)
    internal.set(host, all[i]!)
    internalPooling.set(host, e.pooling === true)
  })
  // Every endpoint internal is an agent that serves the other agents of its authtoken
  // (ngrok's `ngrok http 80 --url https://svc.internal`): its hello asks for no names.
  /** Internal endpoints of the token's other agents, as the relay lists them (remote-internal.ts). */
  const remoteInternal = new RemoteInternalEndpoints({ maxHeadSize: maxHeadMessageFor(maxHeaderSize), responseTimeout })
  const byPublicName = new Map<string, EndpointRuntime>()
  let publicUrls = new Map<EndpointRuntime, string[]>()

  let sequence = 0
  const idPrefix = randomBytes(4).toString('hex')
  const runtime: AgentRuntime = {
    dispatcher,
    events,
    record: options.record ?? false,
    maxHeadSize: maxHeadMessageFor(maxHeaderSize),
    responseTimeout,
    tlsVerify,
    // An internal host comes in a head only from the relay's internal routing: another agent of the token calls it.
    endpoint: (name) => byPublicName.get(name) ?? (name.startsWith('tcp://') || name.startsWith('tls://') ? rawInternal.get(name) : name.endsWith('.internal') || name.includes('.internal:') ? internal.get(name) : undefined),
    rawInternalEndpoint: (target) => rawInternal.get(target),
    hasRemoteRawInternal: (target) => remoteInternal.hasRaw(target),
    openRemoteRawInternal: (target) => remoteInternal.openRaw(target),
    internalEndpoint: (host, from) => internal.get(host) ?? remoteInternal.endpoint(host, from),
    internalRequest: (host: string, req: InternalRequest, hops: number, maxBody: number, signal: AbortSignal) => {
      const endpoint = internal.get(host)
      if (endpoint) return internalRequest(req, endpoint, runtime, hops, maxBody, signal)
      if (remoteInternal.has(host)) return remoteInternal.request(host, req, hops, maxBody, signal)
      return Promise.reject(new PolicyRuntimeError('GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND', `no endpoint of this agent, and none of its authtoken on the relay, is ${host}`))
    },
    nextId: () => `req_${idPrefix}${(++sequence).toString(36).padStart(6, '0')}`,
  }

  const agentId = options.agentId ?? randomBytes(16).toString('hex')
  const state: AgentStatus = {
    status: 'connecting',
    relay: options.relay,
    embedded: options.embedded ?? false,
    attempt: 0,
    latencyMs: undefined,
    lastError: undefined,
    tunnels: [],
    version: VERSION,
  }
  const setStatus = (status: TunnelStatus, patch: Partial<AgentStatus> = {}): void => {
    Object.assign(state, patch, { status })
    events.emit('status', { ...state })
  }
  const log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void => {
    events.emit('log', { level, msg, fields })
  }

  // The relay given, and the other relays of its cluster, learned from the welcome.
  const relays = new RelayList(options.relay)
  let current: RelayConnection | undefined
  /** Every link still up: the current one, and older ones finishing their requests after a GoAway. */
  const live = new Set<Session>()
  let closing = false
  /** close() is letting the open requests finish: no reconnecting meanwhile. */
  let draining = false
  let resolveDone!: (err: CodedError | undefined) => void
  const done = new Promise<CodedError | undefined>((resolve) => {
    resolveDone = resolve
  })
  let retryTimer: NodeJS.Timeout | undefined

  const hello = (): Hello => ({
    version: PROTOCOL_VERSION,
    authtoken: options.authtoken ?? '',
    agentId,
    client: `gw/${VERSION}`,
    endpoints: endpoints.map((e, i): EndpointRequest => {
      const { publicHost, pooling, relayCache } = publicOptions[i]!
      // A tcp endpoint asks by port (the one it was given, after a reconnect), the others by name.
      if (e.proto === 'tcp') return { proto: 'tcp', ...(e.remotePort !== undefined ? { port: e.remotePort } : {}), ...(pooling ? { pooling: true } : {}) }
      return {
        proto: e.proto,
        ...(e.publicName ? { name: e.publicName } : {}),
        ...(publicHost ? { host: publicHost } : {}),
        ...(pooling ? { pooling: true } : {}),
        ...(relayCache ? { relayCache: true } : {}),
        ...(e.terminateTls ? { terminateTls: e.terminateTls.request } : {}),
      }
    }),
  })

  /**
   * A relay that does not run an endpoint's terminate-tls leaves `terminateTls` out of
   * the welcome (one older than it skips the field): serving the endpoint there would
   * drop its mutual TLS, so the agent stops instead, saying why.
   */
  const connect = (relay: string): Promise<RelayConnection> =>
    connectRelay({ relay, relayCa: options.relayCa, hello: hello(), heartbeatTimeout, handshakeTimeout }).then((connection) => {
      const missing = connection.welcome.endpoints.findIndex((assigned, i) => endpoints[i]?.terminateTls !== undefined && assigned.terminateTls !== true)
      if (missing === -1) return connection
      const err = new CliError('GW_ERR_RELAY_NO_TERMINATE_TLS', `the relay at ${relay} does not run terminate-tls for https endpoints (the policy's on_tcp_connect of ${endpoints[missing]!.name}: mutual TLS, TLS versions), so the endpoint is not served without it; upgrade the relay (gw relay) or remove terminate-tls from the policy`)
      connection.session.close(err)
      throw err
    })

  const attach = (connection: RelayConnection): void => {
    current = connection
    const { session, welcome } = connection
    const known = relays.all.length
    relays.learn(welcome.relays)
    // Where the agent will go if this relay dies: the cluster's other relays, from the welcome.
    if (relays.all.length > known) log('debug', 'relays to fail over to', { relays: relays.all.slice(1) })
    byPublicName.clear()
    publicUrls = new Map()
    welcome.endpoints.forEach((assigned, i) => {
      const endpoint = endpoints[i]!
      endpoint.publicName = assigned.name
      if (endpoint.proto === 'tcp' && assigned.port !== undefined) endpoint.remotePort = assigned.port
      endpoint.publicUrl = assigned.urls[0]
      byPublicName.set(assigned.name, endpoint)
      publicUrls.set(endpoint, assigned.urls)
      // A relay that does not pool leaves `pooling` out: say so rather than pretend.
      if (publicOptions[i]!.pooling && assigned.pooling !== true) {
        log('warn', 'this relay does not pool endpoints: the name is this agent\'s alone', { name: assigned.name })
      }
      if (publicOptions[i]!.relayCache && assigned.relayCache !== true) {
        if (endpoint.terminateTls) log('warn', 'the relay cache is off for an endpoint with terminate-tls: every request reaches the agent, which checks it', { name: assigned.name })
        else log('warn', 'this relay keeps no cache (gw relay --relay-cache): every request reaches the agent', { name: assigned.name })
      }
    })
    session.on('stream', (stream) => serveStream(stream, runtime))
    session.on('rtt', (ms: number) => {
      state.latencyMs = ms
    })
    // Measure at once: the keepalive's first ping is seconds away, and the UI shows latency from the start.
    session.ping().then((ms) => {
      state.latencyMs = ms
    }, () => {})
    watchControl(connection)
    // This agent's internal endpoints, for the token's other agents (an older relay ignores the message).
    if (internalPooling.size > 0) {
      const announced: InternalEndpoints = { endpoints: [] }
      for (const [host, pooling] of internalPooling) {
        const raw = /^(tcp|tls):\/\/(.*)$/.exec(host)
        // tcp and tls ones in their own list, which a relay that predates them skips.
        if (raw) (announced.raw ??= []).push({ proto: raw[1] as 'tcp' | 'tls', host: raw[2]!, ...(pooling ? { pooling: true } : {}) })
        else announced.endpoints.push({ host, ...(pooling ? { pooling: true } : {}) })
      }
      new MessageWriter(connection.control).internalEndpoints(announced)
    }
    live.add(session)
    session.once('close', (err?: Error) => {
      live.delete(session)
      remoteInternal.forget(session)
      onLinkClosed(session, err)
    })
    // The relay is draining (a deploy, a restart): it takes no new requests on this link
    // but finishes the open ones. Connect again now, through the same URL (a load balancer
    // sends it to another relay), while this link serves what it has.
    session.once('goaway', () => {
      if (current?.session !== session || closing) return
      current = undefined
      relays.failed()
      log('warn', 'the relay is going away; reconnecting', { relay: relays.current })
      scheduleReconnect(1, new GwError('GW_ERR_MUX_GOAWAY', 'the relay is going away'), 0)
    })
    setStatus('online', { attempt: 0, lastError: undefined, tunnels: tunnelInfos() })
  }

  const tunnelInfos = (): TunnelInfo[] =>
    endpoints.map((e) => {
      const urls = publicUrls.get(e) ?? []
      return {
        name: e.name,
        publicName: e.publicName,
        publicUrl: urls.find((u) => u.startsWith('https:')) ?? urls[0] ?? '',
        publicUrls: urls,
        upstream: e.upstream.origin,
        upstreamProtocol: e.upstreamProtocol,
        inspect: e.inspect,
      }
    })

  const internalInfos = (): TunnelInfo[] =>
    [...internal, ...rawInternal].map(([host, e]) => {
      const url = e.proto === 'http' ? `https://${host}` : host
      return { name: e.name, publicName: '', publicUrl: url, publicUrls: [url], upstream: e.upstream.origin, upstreamProtocol: e.upstreamProtocol, inspect: e.inspect, internal: true }
    })

  // The relay speaks on the control stream only to say something is wrong (replaced…).
  /** A request the relay's cache answered: recorded like one the agent served, for the inspector and the request log. */
  const recordCacheHit = (payload: Buffer): void => {
    if (!runtime.record) return
    let hit: CacheHit
    try {
      hit = checkCacheHit(decodeJson(payload, 'cache hit'))
    } catch {
      return // a malformed notice is the relay's fault, not a reason to drop the link
    }
    const endpoint = byPublicName.get(hit.tunnel)
    if (!endpoint) return
    const recorder = new Recorder(runtime.events, { id: hit.requestId, tunnel: endpoint.name, head: hit })
    recorder.response(hit.status, '', hit.responseRawHeaders)
    recorder.exchange.bytesOut = hit.bytes
    recorder.end()
  }

  const watchControl = ({ controlReader, session }: RelayConnection): void => {
    void (async () => {
      try {
        for (;;) {
          const message = await controlReader.next()
          if (!message) return
          if (message.type === MessageType.CACHE_HIT) {
            recordCacheHit(message.payload)
            continue
          }
          if (message.type === MessageType.INTERNAL_ENDPOINTS) {
            if (current?.session !== session) continue
            try {
              remoteInternal.update(session, checkInternalEndpoints(decodeJson(message.payload, 'internal endpoints')))
            } catch { /* a malformed list is the relay's fault: keep the last one */ }
            continue
          }
          if (message.type !== MessageType.NOTICE) continue
          const notice = checkCodedMessage(decodeJson(message.payload, 'notice'), 'notice')
          // An old link (left after a GoAway) replaced by our own new one: nothing is wrong.
          if (current?.session !== session) {
            session.close()
            continue
          }
          log('error', notice.message, { code: notice.code })
          if (FATAL.has(notice.code)) stop(new GwError(notice.code, notice.message))
          else session.close(new GwError(notice.code, notice.message))
        }
      } catch { /* the session's close handles it */ }
    })()
  }

  const onLinkClosed = (session: Session, err?: Error): void => {
    if (current?.session !== session) return
    current = undefined
    if (closing) return
    const reason = err?.message ?? 'the relay closed the connection'
    log('warn', 'tunnel connection lost', { relay: relays.current, error: reason })
    relays.failed()
    scheduleReconnect(1, err instanceof CodedError ? err : new GwError('GW_ERR_MUX_CLOSED', reason))
  }

  const scheduleReconnect = (attempt: number, lastError: CodedError, delayMs?: number): void => {
    if (closing || draining) return
    const base = Math.min(backoff.max, backoff.initial * 2 ** (attempt - 1))
    const delay = delayMs ?? Math.round(base / 2 + Math.random() * (base / 2))
    setStatus('reconnecting', { attempt, lastError: { code: lastError.code, message: lastError.message } })
    log('warn', 'reconnecting', { attempt, delay_ms: delay, error: lastError.message })
    retryTimer = setTimeout(() => {
      const relay = relays.current
      connect(relay).then(
        (connection) => {
          if (closing || draining) return connection.session.close()
          state.relay = relay
          attach(connection)
          log('info', 'reconnected', { attempt, urls: tunnelInfos().flatMap((t) => t.publicUrls) })
        },
        (err: CodedError) => {
          if (FATAL.has(err.code)) return stop(err)
          relays.failed()
          scheduleReconnect(attempt + 1, err)
        },
      )
    }, delay)
  }

  const stop = (err: CodedError | undefined): void => {
    if (closing) return
    closing = true
    clearTimeout(retryTimer)
    for (const session of live) session.close(err)
    current = undefined
    setStatus('offline', err ? { lastError: { code: err.code, message: err.message } } : {})
    void closeDispatchers()
    for (const endpoint of all) void endpoint.policy?.close()
    resolveDone(err)
  }

  /**
   * Leave without failing a request: GoAway on every link (the relay sends new requests
   * elsewhere), take the ones it sent before it heard, then wait for the open streams to
   * finish, at most `timeoutMs`.
   */
  const drain = async (timeoutMs: number): Promise<void> => {
    draining = true
    clearTimeout(retryTimer)
    const sessions = [...live]
    for (const session of sessions) session.goAway({ acceptRacing: true })
    const deadline = Date.now() + timeoutMs
    await Promise.race([
      Promise.all(sessions.map((s) => s.drainRacing())),
      new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ])
    // The control stream stays open for the link's life.
    while (Date.now() < deadline && sessions.some((s) => !s.closed && s.streamCount > 1)) {
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  const first = await connect(options.relay)
    .catch(async (err: Error) => {
      await closeDispatchers()
      throw err
    })
  attach(first)

  return {
    events,
    get tunnels() {
      return tunnelInfos()
    },
    status: () => ({ ...state, tunnels: tunnelInfos(), internal: internalInfos() }),
    openStreams: () => {
      let n = 0
      for (const session of live) n += session.streamCount - 1
      return n
    },
    replay: (request, replayOf, tunnel) => {
      const endpoint = all.find((e) => e.name === tunnel) ?? all[0]!
      return replayRequest(request, replayOf, endpoint, runtime)
    },
    done,
    close: async () => {
      if (!closing && options.drainTimeout) await drain(options.drainTimeout)
      stop(undefined)
      await done
    },
  }
}
