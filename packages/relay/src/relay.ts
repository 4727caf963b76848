/**
 * The relay: the public server.
 *
 *   accept → route by Host → open stream → relay response
 *
 * A request whose Host is `<name>.<domain>` goes to the agent that holds `name`, over a
 * new yamux stream on that agent's WebSocket. Any other Host is the relay's own: agents
 * connect there at AGENT_PATH.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createHash, X509Certificate } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { AddressInfo, Server as NetServer, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { GwError, HandshakeError, MuxError, type ErrorCode, AGENT_PATH, type AssignedEndpoint, type EndpointProto, type EndpointRequest, type Hello, type TerminateTlsRequest, LINK_DEFAULTS, maxHeadMessageFor, type Stream, type RequestHead, isLoopbackHost } from '@gw/protocol'
import { AccessControl, type Refusal, type RequestGate, type TokenEntry, type TokenLimits } from './access.js'
import { AgentLink } from './agent-link.js'
import { buildRequestHead, normalizeAddress } from './forwarded-head.js'
import { hostProblem } from './host-header.js'
import { checkName, NameRegistry, type NameStore } from './names.js'
import { RouteTable } from './routes.js'
import { drain } from './drain.js'
import { checkAuthtokens, resolveRelayOptions, type RelayOptions, type ResolvedRelayOptions } from './options.js'
import { relayRequest, sendErrorPage } from './relay-request.js'
import { relayUpgrade, sendRawErrorPage } from './relay-upgrade.js'
import { loadTls, type RelayTls } from './tls.js'
import { RelayError } from './errors.js'
import { RelayEvents, RequestTracker, tokenIdOf, type TrackedRequest } from './observe.js'
import { createRelayMetrics, serveMetrics, shareMetricsWithPrimary, type MetricsServer } from './metrics.js'
import { openAccessLog, type AccessLog } from './access-log.js'
import { CertManager } from './acme/manager.js'
import { tlsFront, type TlsFront } from './acme/tls-front.js'
import { Cluster, type LocateResult } from './cluster/cluster.js'
import type { SharedConfig } from './cluster/shared-config.js'
import { TcpEdge } from './tcp-listener.js'
import { TlsEdge } from './tls-passthrough.js'
import { acceptHttp2, type EdgeRefusal, type H2Edge } from './h2-edge.js'
import { TerminateTlsServers, terminatedBy } from './terminate-tls.js'
import { RelayCache, type CacheStats } from './cache/store.js'
import { beginCache, type CacheExchange } from './cache/exchange.js'
import { LoopbackListeners } from './loopback.js'
import { InternalEndpointTable } from './internal-endpoints.js'
import { CustomDomains, checkCustomHost } from './custom-domains.js'

export interface Relay {
  readonly domain: string
  /** Hosts outside the domain are served once DNS points them here (--custom-domains). */
  readonly customDomains: boolean
  readonly host: string
  readonly httpPort: number | undefined
  readonly httpsPort: number | undefined
  /** Where agents connect, e.g. `http://127.0.0.1:8080`. */
  readonly httpUrl: string | undefined
  readonly httpsUrl: string | undefined
  /** PEM clients must trust for HTTPS (the generated CA, or the given certificate). */
  readonly caCertPem: string | undefined
  readonly caCertPath: string | undefined
  /** Connected agents. */
  readonly agentCount: number
  /** Names with a connected agent. */
  onlineNames(): string[]
  /** Streams open across all agent links; 0 when no request is in flight. */
  openStreams(): number
  /**
   * Stop gracefully: refuse new connections, GoAway to every agent, let the requests in
   * flight finish for up to `timeoutMs`, then close. True when none had to be cut.
   */
  drain(timeoutMs: number): Promise<boolean>
  /** Agents, requests, handshakes as they happen; `emit('acme', …)` feeds the ACME metrics. */
  readonly events: RelayEvents
  /** Where Prometheus scrapes, with --metrics-addr. */
  readonly metricsUrl: string | undefined
  /** With a cluster: this relay's id in Redis, and the host:port other relays dial. */
  readonly clusterId: string | undefined
  readonly clusterPeer: string | undefined
  /**
   * Swap in new tokens, limits and (with cert and key) the TLS certificate without
   * dropping a connection; the agents of a token no longer listed are told
   * GW_ERR_AUTH_REVOKED and disconnected. Throws, changing nothing, when the certificate does not load.
   */
  reload(update: RelayReload): Promise<void>
  /** Open the access log file again (after logrotate). */
  reopenLogs(): void
  close(): Promise<void>
}

export interface RelayReload {
  /** Omitted: the tokens and limits stay (a certificate-only reload, SIGHUP without --config). */
  tokens?: TokenEntry[]
  limits?: TokenLimits
  tlsCert?: string
  tlsKey?: string
}

export async function startRelay(options: RelayOptions): Promise<Relay> {
  const opts = resolveRelayOptions(options)
  // A cluster (--redis) keeps names in Redis, shared by its relays; a lone relay in names.json.
  const cluster = opts.cluster ? await Cluster.open({
    ...opts.cluster,
    peerListen: opts.cluster.peerListen ?? `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:0`,
    heartbeatTimeout: opts.heartbeatTimeout,
    log: opts.log,
  }) : undefined
  // Tokens and limits from a config file are the cluster's; a relay with none takes the cluster's.
  const ownConfig = opts.tokens.length > 0 || Object.keys(opts.limits).length > 0
  const shared = cluster && !ownConfig ? await cluster.config.read().catch(() => undefined) : undefined
  const access = new AccessControl(opts.authtokens, opts.tokenDigests, shared?.tokens ?? opts.tokens, shared?.limits ?? opts.limits)
  if (cluster) {
    if (shared) {
      cluster.config.adopted(shared)
      opts.log('info', 'tokens and limits taken from the cluster', { tokens: shared.tokens.length, from: shared.relay })
    }
    if (ownConfig) cluster.ownConfig = { tokens: opts.tokens, limits: opts.limits }
    try {
      checkAuthtokens(opts, access.size > 0)
    } catch (err) {
      await cluster.close()
      throw err
    }
  }
  const names: NameStore = cluster?.names ?? new NameRegistry(opts.stateDir)
  const tls = opts.httpsPort === false ? undefined : await loadTls({
    stateDir: opts.stateDir,
    domain: opts.domain,
    ...(opts.tlsCert ? { certPath: opts.tlsCert } : {}),
    ...(opts.tlsKey ? { keyPath: opts.tlsKey } : {}),
  })
  const core = new RelayCore(opts, access, names, cluster)
  core.defaultCert = tls?.cert
  access.globalRate = cluster?.rates
  const acme = opts.acme && tls ? await CertManager.start({
    acme: opts.acme,
    stateDir: opts.stateDir,
    domain: opts.domain,
    allowed: (host) => core.mayServe(host),
    domainCovered: opts.tlsCert !== undefined,
    httpListener: opts.httpPort !== false,
    log: opts.log,
    onEvent: (event) => core.events.emit('acme', event),
    ...(cluster ? { shared: cluster.acme } : {}),
  }) : undefined
  core.acme = acme
  if (opts.loopbackUrls) core.loopbacks = new LoopbackListeners((name) => core.attach(createHttpServer(serverOptions(opts)), 'http', name))

  const servers: Array<{ server: Server; scheme: 'http' | 'https' }> = []
  let front: TlsFront | undefined
  let httpsServer: ReturnType<typeof createHttpsServer> | undefined
  if (opts.httpPort !== false) servers.push({ server: core.attach(createHttpServer(serverOptions(opts)), 'http'), scheme: 'http' })
  if (tls) {
    const SNICallback = acme ? acme.sni(tls.SNICallback) : tls.SNICallback
    const httpsOptions = { ...serverOptions(opts), ALPNProtocols: ['h2', 'http/1.1'] }
    const server = createHttpsServer({ ...httpsOptions, key: tls.key, cert: tls.cert, ...(SNICallback ? { SNICallback } : {}) })
    servers.push({ server: core.attach(server, 'https'), scheme: 'https' })
    core.acceptHttp2(server)
    httpsServer = server
    // https endpoints with terminate-tls (mutual TLS, versions): a TLS server each, the same certificates (terminate-tls.ts).
    core.terminateTls = new TerminateTlsServers({ options: httpsOptions, key: tls.key, cert: tls.cert, SNICallback }, (variant) => {
      core.attach(variant, 'https')
      const edge = core.acceptHttp2(variant)
      return () => core.dropHttp2(edge)
    })
    // TLS-ALPN-01, tls endpoints and terminate-tls names are told apart before TLS starts, from the ClientHello (acme/tls-front.ts).
    front = tlsFront(server, {
      ...(acme ? { challengeFor: (host: string) => acme.alpnChallenge(host) } : {}),
      passthrough: (servername, socket) => core.tlsEdge.accept(servername, socket, ports.https ?? 0),
      serverFor: (servername) => core.terminateTlsServerFor(servername),
    }, opts.headersTimeout)
  }

  const ports: Partial<Record<'http' | 'https', number>> = {}
  let metrics: MetricsServer | undefined
  try {
    await core.cache?.open()
    for (const { server, scheme } of servers) {
      const port = scheme === 'http' ? (opts.httpPort as number) : (opts.httpsPort as number)
      ports[scheme] = await listen(scheme === 'https' && front ? front.server : server, opts.host, port)
    }
    if (opts.metricsAddr !== undefined && opts.metricsViaPrimary) shareMetricsWithPrimary(createRelayMetrics(core.events, core))
    else if (opts.metricsAddr !== undefined) metrics = await serveMetrics(createRelayMetrics(core.events, core), opts.metricsAddr)
    await cluster?.start(core, opts.cluster?.agentUrls ?? defaultAgentUrls(opts, ports))
  } catch (err) {
    await cluster?.close()
    acme?.close()
    await Promise.all([...servers.map(({ server }) => closeServer(server)), front?.close(), core.cache?.close()])
    throw err
  }
  const accessLog: AccessLog | undefined = opts.accessLog
    ? openAccessLog(opts.accessLog, core.events, (err) => opts.log('error', 'the access log cannot be written', { error: err.message }), cluster?.id)
    : undefined
  core.setPublicPorts(opts.publicHttpPort ?? ports.http, opts.publicHttpsPort ?? ports.https, tls !== undefined)

  const urlHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host
  return {
    domain: opts.domain,
    customDomains: opts.customDomains,
    host: opts.host,
    httpPort: ports.http,
    httpsPort: ports.https,
    httpUrl: ports.http !== undefined ? `http://${urlHost}:${ports.http}` : undefined,
    httpsUrl: ports.https !== undefined ? `https://${urlHost}:${ports.https}` : undefined,
    caCertPem: tls?.trustPem,
    caCertPath: tls?.trustPath,
    get agentCount() {
      return core.links.size
    },
    onlineNames: () => core.routes.names(),
    drain: async (timeoutMs) => {
      front?.server.close()
      core.tcp.stopListening()
      const finished = await drain(core, [...servers.map(({ server }) => server), ...(core.loopbacks?.servers() ?? [])], timeoutMs)
      core.closeAll()
      acme?.close()
      core.customDomains?.close()
      await Promise.all([...servers.map(({ server }) => closeServer(server)), front?.close(), core.tcp.close(), core.loopbacks?.close()])
      await Promise.all([names.flush(), metrics?.close(), accessLog?.close(), cluster?.close(), core.cache?.close()])
      return finished
    },
    openStreams: () => core.openStreams(),
    events: core.events,
    metricsUrl: metrics?.url,
    clusterId: cluster?.id,
    clusterPeer: cluster?.peerAddress,
    reload: async (update) => {
      if (httpsServer && update.tlsCert && update.tlsKey) {
        const next = await loadTls({ stateDir: opts.stateDir, domain: opts.domain, certPath: update.tlsCert, keyPath: update.tlsKey })
        httpsServer.setSecureContext({ key: next.key, cert: next.cert })
        core.terminateTls?.setCertificate(next.key, next.cert)
        core.defaultCert = next.cert
      }
      if (update.tokens) {
        access.replace(update.tokens, update.limits ?? {})
        core.revokeRemovedTokens()
        // The cluster's relays take them too.
        if (cluster) {
          cluster.ownConfig = { tokens: update.tokens, limits: update.limits ?? {} }
          await cluster.config.publish(update.tokens, update.limits ?? {}).catch((err: Error) => {
            opts.log('warn', 'the reloaded tokens and limits could not be shared with the cluster; it gets them when Redis answers', { error: err.message })
          })
        }
      }
    },
    reopenLogs: () => accessLog?.reopen(),
    close: async () => {
      access.close()
      core.closeAll()
      acme?.close()
      core.customDomains?.close()
      await Promise.all([...servers.map(({ server }) => closeServer(server)), front?.close(), core.tcp.close(), core.loopbacks?.close()])
      await Promise.all([names.flush(), metrics?.close(), accessLog?.close(), cluster?.close(), core.cache?.close()])
    },
  }
}

/** Where agents may reach this relay again: its own URLs on loopback (tests, one machine), else the public domain. */
function defaultAgentUrls(opts: ResolvedRelayOptions, ports: Partial<Record<'http' | 'https', number>>): string[] {
  if (isLoopbackHost(opts.host)) {
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
    return [ports.https !== undefined ? `https://${host}:${ports.https}` : '', ports.http !== undefined ? `http://${host}:${ports.http}` : ''].filter(Boolean)
  }
  const https = opts.publicHttpsPort ?? ports.https
  const http = opts.publicHttpPort ?? ports.http
  return [
    https !== undefined ? `https://${opts.domain}${https === 443 ? '' : `:${https}`}` : '',
    http !== undefined ? `http://${opts.domain}${http === 80 ? '' : `:${http}`}` : '',
  ].filter(Boolean)
}

function serverOptions(opts: ResolvedRelayOptions) {
  return {
    maxHeaderSize: opts.maxHeaderSize,
    headersTimeout: opts.headersTimeout,
    // Bodies stream through the tunnel for as long as they take; the idle timeout guards them.
    requestTimeout: 0,
    keepAliveTimeout: 65_000,
    connectionsCheckingInterval: Math.min(1000, opts.headersTimeout),
    noDelay: true,
    // hostProblem() refuses a missing Host with a coded page; Node's own check answers
    // an uncoded 400 and then lets a pipelined request after it be answered too.
    requireHostHeader: false,
  }
}

function listen(server: NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const hint = err.code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE; pick another port)' :
        err.code === 'EADDRINUSE' ? ' (another process listens there; pick another port)' : ''
      reject(new RelayError('GW_ERR_RELAY_LISTEN', `cannot listen on ${host}:${port}: ${err.code ?? err.message}${hint}`, { cause: err }))
    }
    server.once('error', onError)
    // Node's default accept backlog (511) drops SYNs when thousands of clients connect
    // at once; they retry after 1, 3, 7 s (bench/README.md, F4). The kernel caps it at somaxconn.
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off('error', onError)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** Bytes a connection to AGENT_PATH may send before its hello is accepted. */
export const PRE_AUTH_BYTES = 64 * 1024

class RelayCore {
  readonly links = new Set<AgentLink>()
  /** name → the links that serve it now (several when pooled). */
  readonly routes = new RouteTable()
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: LINK_DEFAULTS.wsMaxPayload })
  private readonly sockets = new Set<Duplex>()
  private publicPorts: { http?: number; https?: number; tls: boolean } = { tls: false }
  private readonly suffix: string
  /** Set by drain(): keep-alive off, /healthz 503, new agents refused. */
  draining = false
  /** Set by closeAll(): links closing now are the relay's doing, not their agents' leaving. */
  closing = false
  /** HTTP requests whose response has not closed yet. */
  private inFlight = 0
  private readonly requestDone = (): void => {
    this.inFlight--
  }
  readonly events = new RelayEvents()
  private readonly requests = new RequestTracker(this.events)
  acme: CertManager | undefined
  /** Set with --redis: names held by other relays are reached through it. */
  cluster: Cluster | undefined
  /** tcp endpoints: their ports, listeners and routes (tcp-listener.ts). */
  readonly tcp: TcpEdge
  /** tls endpoints: routed by SNI on the HTTPS port, never decrypted (tls-passthrough.ts). */
  readonly tlsEdge: TlsEdge
  /** HTTP/2 sessions on the TLS port (h2-edge.ts): the HTTPS listener's, and each terminate-tls server's. */
  private readonly h2: H2Edge[] = []
  /** https endpoints' terminate-tls, run by the relay (terminate-tls.ts); none without HTTPS. */
  terminateTls: TerminateTlsServers | undefined
  /** Per-tunnel 127.0.0.1 ports (the embedded relay, --loopback-urls). */
  loopbacks: LoopbackListeners | undefined
  /** The shared HTTP cache (--relay-cache), for endpoints that ask for it. */
  readonly cache: RelayCache | undefined
  /** Internal endpoints (`*.internal`) agents of one token reach through the relay (internal-endpoints.ts). */
  readonly internal: InternalEndpointTable
  /** Hosts outside the domain, checked in DNS (--custom-domains): custom-domains.ts. */
  readonly customDomains: CustomDomains | undefined
  /** The HTTPS listener's certificate (PEM, leaf first): a custom host gets an https URL when it covers the host. */
  defaultCert: string | undefined
  private defaultX509: { pem: string; cert: X509Certificate } | undefined

  constructor(
    private readonly opts: ResolvedRelayOptions,
    readonly access: AccessControl,
    private readonly names: NameStore,
    cluster?: Cluster,
  ) {
    this.cluster = cluster
    this.suffix = `.${opts.domain}`
    const wildcard = opts.host === '0.0.0.0' || opts.host === '::'
    this.tcp = new TcpEdge({
      host: opts.host,
      // A relay on loopback (the embedded one) is reached at its address; any other by its domain.
      publicHost: isLoopbackHost(opts.host) || opts.domain === 'localhost' ? (wildcard ? '127.0.0.1' : opts.host) : opts.domain,
      range: opts.tcpPorts,
      maxConnections: opts.tcpMaxConnections,
      idleTimeout: opts.idleTimeout,
      stateDir: opts.stateDir,
      access,
      log: opts.log,
      events: this.events,
      ...(cluster ? { shared: { store: cluster.ports, locate: (port: number) => cluster.locatePort(port) } } : {}),
    })
    this.tlsEdge = new TlsEdge({ nameOf: (host) => this.tunnelName(host), maxConnections: opts.tcpMaxConnections, idleTimeout: opts.idleTimeout, log: opts.log, events: this.events })
    // A name whose agent is connected (http or tls) never expires.
    const tlsRoutes = this.tlsEdge.routes
    names.held = { has: (name) => this.routes.has(name) || tlsRoutes.has(name) }
    this.cache = opts.relayCache ? new RelayCache(opts.relayCache, opts.log) : undefined
    this.internal = new InternalEndpointTable(access)
    this.customDomains = opts.customDomains ? new CustomDomains({ domain: opts.domain, ...(opts.dnsServer ? { dnsServer: opts.dnsServer } : {}) }) : undefined
  }

  openStreams(): number {
    let n = 0
    // The control stream of each admitted agent stays open for the link's life.
    for (const link of this.links) n += link.session.streamCount - (link.hello ? 1 : 0)
    return n
  }

  cacheStats(): CacheStats | undefined {
    return this.cache?.stats()
  }

  agentsByToken(): Map<string, number> {
    const counts = new Map<string, number>()
    for (const link of this.links) {
      if (!link.owner || link.closed) continue
      const token = tokenIdOf(link.owner)
      counts.set(token, (counts.get(token) ?? 0) + 1)
    }
    return counts
  }

  setPublicPorts(http: number | undefined, https: number | undefined, tls: boolean): void {
    this.publicPorts = { ...(http !== undefined ? { http } : {}), ...(https !== undefined ? { https } : {}), tls }
  }

  /** `fixedName`: every request on this server is that tunnel's, whatever its Host (loopback.ts). */
  attach(server: Server, scheme: 'http' | 'https', fixedName?: string): Server {
    server.timeout = this.opts.idleTimeout
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, scheme, undefined, fixedName))
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, scheme, undefined, fixedName))
    // Any other Expect: refused in onRequest with a coded page (Node's own 417 has no code).
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, scheme, undefined, fixedName))
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head, scheme, fixedName))
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket))
    return server
  }

  /** HTTP/2 on the TLS server, chosen by ALPN; its requests take the same path as HTTP/1.1's. */
  acceptHttp2(server: ReturnType<typeof createHttpsServer>): H2Edge {
    const edge = acceptHttp2(server, { maxHeaderSize: this.opts.maxHeaderSize, idleTimeout: this.opts.idleTimeout }, (req, res, refusal) =>
      this.onRequest(req, res, 'https', refusal))
    this.h2.push(edge)
    return edge
  }

  /** A terminate-tls server is gone: its HTTP/2 sessions are no longer the relay's to drain. */
  dropHttp2(edge: H2Edge): void {
    const i = this.h2.indexOf(edge)
    if (i !== -1) this.h2.splice(i, 1)
  }

  /**
   * The TLS server a connection whose ClientHello names `servername` goes to: the
   * terminate-tls server of the name, when its agent asked for one (pooled agents agree on
   * it, admit() sees to that); undefined for every other name (the HTTPS listener).
   */
  terminateTlsServerFor(servername: string): ReturnType<typeof createHttpsServer> | undefined {
    const name = this.tunnelName(servername)
    if (name === undefined || !this.terminateTls) return undefined
    const terminate = this.routes.linksOf(name)[0]?.terminateTls.get(name)
    return terminate === undefined ? undefined : this.terminateTls.serverFor(terminate.request).server
  }

  /**
   * Why a request for `name`, served by `link`, may not go on: the endpoint has a
   * terminate-tls and the request's connection did not go through it (plain HTTP,
   * another name's TLS connection, HTTP/2 coalesced across names, a connection made
   * before the agent asked). 421 makes a browser retry on a connection of its own.
   */
  private misdirected(req: IncomingMessage, scheme: 'http' | 'https', name: string, link: AgentLink): string | undefined {
    const digest = link.terminateTls.get(name)?.digest
    if (digest === undefined || (scheme === 'https' && terminatedBy(req.socket) === digest)) return undefined
    return scheme === 'https'
      ? `${this.publicHost(name)} runs terminate-tls (a client certificate, TLS versions) and this request came on a TLS connection made for another name or before it; open a new connection to ${this.publicHost(name)}`
      : `${this.publicHost(name)} runs terminate-tls (a client certificate, TLS versions) and is served over HTTPS only; use https://${this.publicHost(name)}`
  }

  /** The tunnel name in a Host header, or undefined when the Host is the relay's own. */
  private tunnelName(host: string | undefined): string | undefined {
    if (!host) return undefined
    let name = host.toLowerCase()
    const colon = name.lastIndexOf(':')
    if (colon !== -1 && !name.endsWith(']')) name = name.slice(0, colon)
    if (!name.endsWith(this.suffix)) return this.customDomains ? this.customName(name) : undefined
    name = name.slice(0, -this.suffix.length)
    return name.length > 0 && !name.includes('.') ? name : undefined
  }

  /**
   * A custom host is its own name (`app.customer.com`, never a single label), once a
   * token owns it: any other host outside the domain is the relay's own.
   */
  private customName(host: string): string | undefined {
    const name = host.endsWith('.') ? host.slice(0, -1) : host
    if (name === this.opts.domain) return undefined
    return this.routes.has(name) || this.tlsEdge.routes.has(name) || this.names.owner(name) !== undefined ? name : undefined
  }

  /** The public host of a name: `<name>.<domain>`, or a custom host as it is. */
  private publicHost(name: string): string {
    return name.includes('.') ? name : `${name}.${this.opts.domain}`
  }

  /**
   * A custom host this relay of a cluster has not heard of (another relay's agent may have
   * claimed it since this one read the owners): asked of the shared state, and the host
   * when a token owns it. Undefined (nothing to ask) for anything but a DNS name outside
   * the domain on a cluster's relay with --custom-domains.
   */
  private unknownCustomHost(hostHeader: string | undefined): Promise<string | undefined> | undefined {
    const cluster = this.cluster
    if (!cluster || !this.customDomains || !hostHeader) return undefined
    let host = hostHeader.toLowerCase()
    const colon = host.lastIndexOf(':')
    if (colon !== -1 && !host.endsWith(']')) host = host.slice(0, colon)
    try {
      host = checkCustomHost(host, this.opts.domain)
    } catch {
      return undefined
    }
    return cluster.names.fetchOwner(host).then((owner) => (owner !== undefined ? host : undefined), () => undefined)
  }

  /** May the relay get a certificate for `host`: its own domain, or a name someone holds (a cluster's relay may have to ask). */
  mayServe(host: string): boolean | Promise<boolean> {
    if (host === this.opts.domain) return true
    const name = this.tunnelName(host)
    if (name !== undefined && this.names.owner(name) !== undefined) return true
    const cluster = this.cluster
    if (!cluster) return false
    if (name === undefined) return this.unknownCustomHost(host)?.then((h) => h !== undefined) ?? false
    return cluster.names.fetchOwner(name).then((owner) => owner !== undefined, () => false)
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', refusal?: EdgeRefusal, fixedName?: string): void {
    this.inFlight++
    res.once('close', this.requestDone)
    if (this.draining) res.shouldKeepAlive = false
    const tracked = this.requests.begin(req, res, scheme, normalizeAddress(req.socket.remoteAddress ?? ''))
    const problem = refusal?.detail ?? hostProblem(req)
    if (problem) {
      res.shouldKeepAlive = false
      return sendErrorPage(req, res, refusal?.code ?? 'GW_ERR_BAD_REQUEST', problem)
    }
    const expect = req.headers.expect
    if (expect !== undefined && expect.trim().toLowerCase() !== '100-continue') {
      return sendErrorPage(req, res, 'GW_ERR_EXPECTATION_FAILED', `the relay meets only Expect: 100-continue, not ${JSON.stringify(expect.slice(0, 64))}; send the request without it`)
    }
    // An ACME HTTP-01 validation, answered before tunnel routing (in a cluster, maybe
    // after a look in the shared state: the order may be another relay's).
    const challenge = this.acme?.answerHttp01(req, res) ?? false
    if (challenge === true) return
    if (challenge !== false) return void challenge.then((answered) => answered || this.route(req, res, scheme, tracked, fixedName))
    this.route(req, res, scheme, tracked, fixedName)
  }

  private route(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', tracked: TrackedRequest, fixedName: string | undefined): void {
    const name = fixedName ?? this.tunnelName(req.headers.host)
    if (name === undefined) {
      const custom = this.unknownCustomHost(req.headers.host)
      if (custom) return void custom.then((host) => (host !== undefined ? this.route(req, res, scheme, tracked, host) : this.onOwnRequest(req, res)))
      return this.onOwnRequest(req, res)
    }
    tracked.name = name
    const link = this.routes.pick(name)
    if (link) {
      const why = this.misdirected(req, scheme, name, link)
      if (why !== undefined) return sendErrorPage(req, res, 'GW_ERR_MISDIRECTED_REQUEST', why)
      return this.toAgent(req, res, scheme, tracked, name, link.owner, link)
    }
    // Held by another relay of the cluster: the same request, over a stream through it.
    if (this.cluster) return void this.cluster.locate(name).then((found) => this.throughCluster(req, res, scheme, tracked, name, found))
    const [code, detail] = this.missing(name)
    return sendErrorPage(req, res, code, detail)
  }

  private throughCluster(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', tracked: TrackedRequest, name: string, found: LocateResult): void {
    if (res.destroyed) return
    if ('remote' in found) return this.toAgent(req, res, scheme, tracked, name, found.remote.owner, found.remote)
    const [code, detail] = 'failure' in found ? found.failure : this.missing(name)
    sendErrorPage(req, res, code, detail)
  }

  private toAgent(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', tracked: TrackedRequest, name: string, owner: string, link: { openStream(): Stream }): void {
    tracked.token = tokenIdOf(owner)
    const gate = this.access.admitRequest(owner)
    // A cluster counts the token's rps in Redis first.
    if (gate instanceof Promise) {
      return void gate.then((g) => {
        if (res.destroyed) return g.ok ? g.release() : undefined
        this.toAgentGated(req, res, scheme, tracked, name, owner, link, g)
      })
    }
    this.toAgentGated(req, res, scheme, tracked, name, owner, link, gate)
  }

  private toAgentGated(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', tracked: TrackedRequest, name: string, owner: string, link: { openStream(): Stream }, gate: RequestGate): void {
    if (!gate.ok) {
      this.events.emit('limit:hit', { token: tokenIdOf(owner), limit: gate.code === 'GW_ERR_RATE_LIMITED' ? 'rps' : 'streams' })
      if (gate.retryAfter !== undefined) res.setHeader('retry-after', String(gate.retryAfter))
      return sendErrorPage(req, res, gate.code, gate.detail)
    }
    res.once('close', gate.release)
    const refused = this.access.checkHead(owner, req) ?? this.bodyRefused(owner, req)
    if (refused) {
      res.shouldKeepAlive = false
      return sendErrorPage(req, res, refused.code, refused.detail)
    }
    this.access.throttleResponse(owner, res)
    // The shared cache, for an endpoint of an agent on this relay that asked for it.
    const local = link instanceof AgentLink ? link : undefined
    if (this.cache && local && local.endpoints.some((e) => e.name === name && e.relayCache === true)) {
      const tap = beginCache(this.cache, req, res, name, owner, scheme, tracked, (hit) => local.cacheHit(hit))
      if (tap instanceof Promise) return void tap.then((t) => t && !res.destroyed && this.sendToAgent(req, res, scheme, tracked, name, owner, link, t))
      if (!tap) return
      return this.sendToAgent(req, res, scheme, tracked, name, owner, link, tap)
    }
    this.sendToAgent(req, res, scheme, tracked, name, owner, link, undefined)
  }

  private sendToAgent(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', tracked: TrackedRequest, name: string, owner: string, link: { openStream(): Stream }, tap: CacheExchange | undefined): void {
    let stream
    try {
      stream = link.openStream()
    } catch (err) {
      return sendErrorPage(req, res, openFailure(err), `the agent for ${name} cannot take a new request: ${(err as Error).message}`)
    }
    const head = buildRequestHead(req, name, scheme, false)
    head.requestId = tracked.id
    tap?.prepare(head)
    relayRequest(req, res, stream, head, maxHeadMessageFor(this.opts.maxHeaderSize), tap, this.access.limitsOf(owner).bodySize)
  }

  /** A body that says up front it is past the token's limit is refused before a stream opens. */
  private bodyRefused(owner: string, req: IncomingMessage): Refusal | undefined {
    const limit = this.access.limitsOf(owner).bodySize
    const length = Number(req.headers['content-length'] ?? 0)
    if (limit === undefined || !(length > limit)) return undefined
    return { code: 'GW_ERR_BODY_TOO_LARGE', detail: `the request body is ${length} bytes and this tunnel's authtoken allows ${limit}` }
  }

  private missing(name: string): [ErrorCode, string] {
    if (this.names.owner(name) !== undefined) {
      return ['GW_ERR_AGENT_OFFLINE', `the tunnel ${this.publicHost(name)} exists, but its agent is not connected right now`]
    }
    return ['GW_ERR_TUNNEL_NOT_FOUND', `there is no tunnel named ${this.publicHost(name)}; check the URL, or start one with gw http`]
  }

  private onOwnRequest(req: IncomingMessage, res: ServerResponse): void {
    if (req.url === '/' || req.url === '/healthz') {
      if (this.draining) return sendErrorPage(req, res, 'GW_ERR_RELAY_DRAINING', 'this relay is shutting down and finishing the requests it has; connect again to reach another one')
      const member = this.cluster ? ` Cluster member ${this.cluster.id}.` : ''
      const body = `gw relay for *.${this.opts.domain}: ${this.links.size} agent(s) connected. Agents connect at ${AGENT_PATH}.${member}\n`
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) })
      return void res.end(body)
    }
    sendErrorPage(req, res, 'GW_ERR_TUNNEL_NOT_FOUND', `${req.headers.host ?? 'this host'} is the relay itself; tunnels live at <name>.${this.opts.domain}`)
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, scheme: 'http' | 'https', fixedName?: string): void {
    this.track(socket)
    ;(socket as Socket).setTimeout?.(this.opts.idleTimeout, () => socket.destroy())
    const problem = hostProblem(req)
    if (problem) return sendRawErrorPage(req, socket, 'GW_ERR_BAD_REQUEST', problem)
    const name = fixedName ?? this.tunnelName(req.headers.host)
    if (name === undefined) {
      const custom = req.url?.split('?')[0] === AGENT_PATH ? undefined : this.unknownCustomHost(req.headers.host)
      if (custom) {
        return void custom.then((host) => {
          if (socket.destroyed) return
          if (host !== undefined) return this.onUpgrade(req, socket, head, scheme, host)
          sendRawErrorPage(req, socket, 'GW_ERR_TUNNEL_NOT_FOUND', `agents connect at ${AGENT_PATH}`)
        })
      }
      if (req.url?.split('?')[0] === AGENT_PATH) {
        if (this.draining) return sendRawErrorPage(req, socket, 'GW_ERR_RELAY_DRAINING', 'this relay is shutting down; connect again to reach another one')
        return this.wss.handleUpgrade(req, socket, head, (ws) => this.onAgent(ws, req))
      }
      return sendRawErrorPage(req, socket, 'GW_ERR_TUNNEL_NOT_FOUND', `agents connect at ${AGENT_PATH}`)
    }
    // Node hands an upgrade's body to this handler as the first raw bytes of the upgraded
    // connection. An upstream that refuses the upgrade would then read them as the next
    // request on its connection, one the traffic policy never saw. WebSocket handshakes
    // are bodiless GETs (RFC 6455 §4.1); nginx and Envoy refuse the rest too.
    const head0 = buildRequestHead(req, name, scheme, true)
    if (head0.hasBody) return sendRawErrorPage(req, socket, 'GW_ERR_BAD_REQUEST', 'an upgrade request may not carry a body (Content-Length or Transfer-Encoding); send the handshake as a GET without one')
    const link = this.routes.pick(name)
    if (link) {
      const why = this.misdirected(req, scheme, name, link)
      if (why !== undefined) return sendRawErrorPage(req, socket, 'GW_ERR_MISDIRECTED_REQUEST', why)
      return this.upgradeToAgent(req, socket, head, scheme, name, link.owner, link, head0)
    }
    if (this.cluster) {
      return void this.cluster.locate(name).then((found) => {
        if (socket.destroyed) return
        if ('remote' in found) return this.upgradeToAgent(req, socket, head, scheme, name, found.remote.owner, found.remote, head0)
        const [code, detail] = 'failure' in found ? found.failure : this.missing(name)
        sendRawErrorPage(req, socket, code, detail)
      })
    }
    const [code, detail] = this.missing(name)
    return sendRawErrorPage(req, socket, code, detail)
  }

  private upgradeToAgent(req: IncomingMessage, socket: Duplex, head: Buffer, scheme: 'http' | 'https', name: string, owner: string, link: { openStream(): Stream }, requestHead: RequestHead): void {
    // An upgraded connection is a request in flight for its whole life: the token's rate,
    // stream and head limits hold for it as for any other.
    const gate = this.access.admitRequest(owner)
    if (gate instanceof Promise) {
      return void gate.then((g) => {
        if (socket.destroyed) return g.ok ? g.release() : undefined
        this.upgradeGated(req, socket, head, scheme, name, owner, link, requestHead, g)
      })
    }
    this.upgradeGated(req, socket, head, scheme, name, owner, link, requestHead, gate)
  }

  private upgradeGated(req: IncomingMessage, socket: Duplex, head: Buffer, scheme: 'http' | 'https', name: string, owner: string, link: { openStream(): Stream }, requestHead: RequestHead, gate: RequestGate): void {
    if (!gate.ok) {
      this.events.emit('limit:hit', { token: tokenIdOf(owner), limit: gate.code === 'GW_ERR_RATE_LIMITED' ? 'rps' : 'streams' })
      return sendRawErrorPage(req, socket, gate.code, gate.detail, gate.retryAfter)
    }
    socket.once('close', gate.release)
    const refused = this.access.checkHead(owner, req)
    if (refused) return sendRawErrorPage(req, socket, refused.code, refused.detail)
    let stream
    try {
      stream = link.openStream()
    } catch (err) {
      return sendRawErrorPage(req, socket, openFailure(err), `the agent for ${name} cannot take a new connection: ${(err as Error).message}`)
    }
    relayUpgrade(req, socket, head, stream, requestHead, maxHeadMessageFor(this.opts.maxHeaderSize))
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy()
    // A request is in flight on this connection: a raw page written now would interleave
    // with its response or follow its `Connection: close`.
    const current = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage
    if (current) {
      current.shouldKeepAlive = false
      // Its own body broke (a bad chunk, or the client ended it short): the exchange
      // ends with the error, as its response (which also resets its stream), or with
      // the connection once that response has begun.
      if (!current.req.complete) {
        if (current.headersSent) socket.destroy()
        else sendErrorPage(current.req, current, 'GW_ERR_BAD_REQUEST', `the request body could not be parsed (${err.code ?? err.message})`)
      }
      // Else bytes that do not parse came after a complete request (pipelined garbage):
      // the connection ends after that request's response, and they are not answered.
      return
    }
    if ((socket as Socket).bytesWritten > 0) return void socket.destroy()
    let code: ErrorCode = 'GW_ERR_BAD_REQUEST'
    let detail = `the request could not be parsed (${err.code ?? err.message})`
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      code = 'GW_ERR_HEADERS_TOO_LARGE'
      detail = `the request headers exceed ${this.opts.maxHeaderSize} bytes`
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      code = 'GW_ERR_HEADERS_TIMEOUT'
      detail = `the request headers did not arrive within ${this.opts.headersTimeout} ms`
    }
    sendRawErrorPage({ headers: {} } as IncomingMessage, socket, code, detail)
  }

  private track(socket: Duplex): void {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
  }

  private onAgent(ws: WebSocket, req: IncomingMessage): void {
    const remote = normalizeAddress(req.socket.remoteAddress ?? '')
    const link = new AgentLink(ws, remote, { heartbeatTimeout: this.opts.heartbeatTimeout, handshakeTimeout: this.opts.handshakeTimeout, maxStreams: this.opts.maxStreamsPerAgent })
    this.links.add(link)
    link.session.once('close', (err?: Error) => {
      this.links.delete(link)
      if (link.owner) this.internal.leave(link)
      if (link.owner) this.events.emit('agent:disconnected', { remote, token: tokenIdOf(link.owner), names: httpNames(link.endpoints), ports: tcpPorts(link.endpoints) })
      for (const endpoint of link.endpoints) {
        if (endpoint.proto === 'tcp') this.tcp.remove(endpoint.port!, link)
        else if (this.routesFor(endpoint.proto).remove(endpoint.name, link)) {
          this.names.release(endpoint.name)
          // A relay going down keeps its directory's entries for when it is back.
          if (!this.closing && !this.draining) this.cache?.purge(endpoint.name)
        }
      }
      if (link.terminateTls.size > 0) this.pruneTerminateTls()
      this.opts.log('info', 'agent disconnected', { remote, names: link.endpoints.map((e) => e.name), reason: err?.message })
    })
    // Until its hello is accepted, a connection is anyone's: it may send at most
    // PRE_AUTH_BYTES in all (counted on the socket, below the WebSocket's own buffering
    // and the streams' windows), so an unauthenticated peer costs the relay a few
    // tens of KiB, not 256 KiB per stream it can open.
    const socket = req.socket
    let preAuth = 0
    const countPreAuth = (chunk: Buffer): void => {
      preAuth += chunk.length
      if (preAuth <= PRE_AUTH_BYTES) return
      socket.off('data', countPreAuth)
      this.opts.log('warn', 'handshake failed', { remote, code: 'GW_ERR_HANDSHAKE_TOO_LARGE', error: `more than ${PRE_AUTH_BYTES} bytes before the hello` })
      this.events.emit('handshake:failed', { remote, code: 'GW_ERR_HANDSHAKE_TOO_LARGE' })
      link.close(new HandshakeError('GW_ERR_HANDSHAKE_TOO_LARGE', `the agent sent more than ${PRE_AUTH_BYTES} bytes before its handshake completed`))
      socket.destroy()
    }
    socket.on('data', countPreAuth)
    link.readHello(this.opts.handshakeTimeout).then(
      async (hello) => {
        await this.admit(link, hello)
        if (link.owner) socket.off('data', countPreAuth)
      },
      (err: Error) => {
        const code: ErrorCode = err instanceof GwError ? err.code : 'GW_ERR_MESSAGE_MALFORMED'
        this.opts.log('warn', 'handshake failed', { remote, code, error: err.message })
        this.events.emit('handshake:failed', { remote, code })
        link.refuse(code, err.message)
      },
    )
  }

  private async admit(link: AgentLink, hello: Hello): Promise<void> {
    let owner: string
    if (this.access.anonymous) {
      owner = `agent:${createHash('sha256').update(hello.agentId).digest('hex')}`
    } else {
      const digest = this.access.verify(hello.authtoken)
      if (!digest) {
        const code = hello.authtoken ? 'GW_ERR_AUTH_INVALID' : 'GW_ERR_AUTH_REQUIRED'
        const message = hello.authtoken
          ? 'the authtoken is not valid on this relay; check it with `gw config check`, or ask the relay operator for one'
          : 'this relay requires an authtoken; give --authtoken, set GW_AUTHTOKEN, or run `gw config add-authtoken <token>`'
        this.opts.log('warn', 'agent refused', { remote: link.remoteAddress, code })
        this.events.emit('handshake:failed', { remote: link.remoteAddress, code })
        return link.refuse(code, message)
      }
      owner = `token:${digest.toString('hex')}`
    }

    const assigned: AssignedEndpoint[] = []
    /** tcp endpoints: their index in `assigned`, and the port asked for. */
    const tcpAsked: Array<{ index: number; port: number | undefined; pooling: boolean }> = []
    /** name → terminate-tls: the https endpoints whose terminate-tls the relay runs. */
    const terminating = new Map<string, { digest: string; request: TerminateTlsRequest }>()
    try {
      this.checkTunnels(owner, hello)
      const seen = new Set<string>()
      for (const endpoint of hello.endpoints) {
        if (endpoint.proto === 'tcp') {
          tcpAsked.push({ index: assigned.length, port: endpoint.port, pooling: endpoint.pooling === true })
          assigned.push({ name: '', urls: [], proto: 'tcp' })
          continue
        }
        if (endpoint.proto === 'tls' && this.opts.httpsPort === false) {
          throw new HandshakeError('GW_ERR_TLS_DISABLED', 'this relay runs without HTTPS (--https-port -1), and tls endpoints are served on its HTTPS port; use gw tcp, or ask the operator to turn HTTPS on')
        }
        let name: string
        const custom = endpoint.host !== undefined && this.customDomains && !this.inDomain(endpoint.host)
        const asked = custom ? undefined : endpoint.host !== undefined ? this.nameInDomain(endpoint.host) : endpoint.name
        if (custom) {
          name = await this.claimCustomHost(endpoint.host!, owner, endpoint.proto === 'tls')
          if (seen.has(name)) throw new HandshakeError('GW_ERR_NAME_TAKEN', `the host "${name}" is requested twice`)
        } else if (asked) {
          name = checkName(asked)
          this.access.checkName(name, owner)
          if (seen.has(name)) throw new HandshakeError('GW_ERR_NAME_TAKEN', `the name "${name}" is requested twice`)
          await this.names.claim(name, owner)
        } else {
          name = await this.names.claimRandom(owner)
        }
        seen.add(name)
        const tls = endpoint.proto === 'tls'
        const terminate = endpoint.terminateTls ? this.admitTerminateTls(name, endpoint, owner) : undefined
        if (!tls) this.checkPoolTerminateTls(name, endpoint, owner, terminate?.digest)
        if (terminate !== undefined) terminating.set(name, terminate)
        // With terminate-tls, HTTPS only: plain HTTP would skip it.
        const urls = tls ? [this.tlsUrlFor(name)] : this.urlsFor(name).filter((u) => terminate === undefined || u.startsWith('https:'))
        assigned.push({ name, urls, ...(endpoint.pooling === true ? { pooling: true } : {}), ...(tls ? { proto: 'tls' as const } : {}),
          // Never for terminate-tls: a hit would answer a request its agent never checks (one through another relay of a cluster).
          ...(endpoint.relayCache === true && this.cache && !tls && terminate === undefined ? { relayCache: true } : {}), ...(terminate !== undefined ? { terminateTls: true } : {}) })
      }
    } catch (err) {
      return this.refuseHello(link, err)
    }
    // tcp endpoints: each port is listened on before the welcome, one after the other
    // (two endpoints of one hello never race for one port).
    const claimed: number[] = []
    try {
      for (const { index, port: asked, pooling } of tcpAsked) {
        if (asked !== undefined && claimed.includes(asked)) throw new HandshakeError('GW_ERR_TCP_PORT_TAKEN', `TCP port ${asked} is requested twice`)
        const port = await this.tcp.claim(owner, asked)
        claimed.push(port)
        assigned[index] = { name: String(port), port, urls: [this.tcp.urlFor(port)], proto: 'tcp', ...(pooling ? { pooling: true } : {}) }
      }
    } catch (err) {
      for (const port of claimed) this.tcp.unused(port)
      return this.refuseHello(link, err)
    }
    // A cluster's relays, for the agent to fail over to.
    const relays = this.cluster ? await this.cluster.agentUrls() : undefined
    // The agent left while its names were claimed (a cluster's claims go to Redis) or its ports opened.
    if (link.closed) {
      for (const port of claimed) this.tcp.unused(port)
      return
    }
    for (const [name, terminate] of terminating) link.terminateTls.set(name, terminate)
    this.commit(link, owner, assigned, relays)
  }

  /**
   * An https endpoint's terminate-tls: its TLS server made (or found), its digest
   * returned. Refused on a relay without HTTPS, for CAs the relay cannot load, and for a
   * pooled agent whose terminate-tls is not the pool's (one name has one TLS front).
   */
  private admitTerminateTls(name: string, endpoint: EndpointRequest, owner: string): { digest: string; request: TerminateTlsRequest } {
    if (!this.terminateTls || !this.publicPorts.tls || this.publicPorts.https === undefined) {
      throw new HandshakeError('GW_ERR_TLS_DISABLED', 'this relay runs without HTTPS (--https-port -1), and terminate-tls (mutual TLS, TLS versions) is run by its HTTPS port; remove it from the policy, or ask the operator to turn HTTPS on')
    }
    // A relay of a cluster (--redis, or a worker of --workers) gets connections for names
    // another member holds, and does not know their terminate-tls before TLS starts: the
    // agent would refuse those requests (421). Refused here, saying so, rather than serve
    // one connection in N.
    if (this.cluster) {
      throw new HandshakeError('GW_ERR_TERMINATE_TLS_INVALID', 'this relay is one of a cluster (gw relay --redis, or a worker of --workers), and terminate-tls on https endpoints (mutual TLS, TLS versions) is run by a lone relay process only: another member would take the name\'s connections without it; run the relay with --workers 1 and no --redis, or remove terminate-tls from the policy')
    }
    const { digest } = this.terminateTls.serverFor(endpoint.terminateTls!)
    return { digest, request: endpoint.terminateTls! }
  }

  /**
   * An agent joining a pool (same owner, both pooling) must run the pool's terminate-tls,
   * or none when the pool runs none: one name has one TLS front, and a member without it
   * would be reached by the requests it must refuse.
   */
  private checkPoolTerminateTls(name: string, endpoint: EndpointRequest, owner: string, digest: string | undefined): void {
    if (endpoint.pooling !== true) return
    const held = this.routes.linksOf(name)
    if (held.length === 0 || !held.every((l) => l.owner === owner && l.endpoints.some((e) => e.name === name && e.pooling === true))) return
    const theirs = held[0]!.terminateTls.get(name)?.digest
    if (theirs === digest) return
    const what = theirs === undefined ? 'run no terminate-tls' : digest === undefined ? 'run a terminate-tls (on_tcp_connect) this one does not' : 'run another terminate-tls'
    throw new HandshakeError('GW_ERR_TERMINATE_TLS_MISMATCH', `the agents pooling ${this.publicHost(name)} ${what}; pooled agents must give the same on_tcp_connect terminate-tls (versions, CAs, verification strategy)`)
  }

  /** Forget terminate-tls servers no connected agent asks for. */
  private pruneTerminateTls(): void {
    if (!this.terminateTls) return
    const inUse = new Set<string>()
    for (const link of this.links) for (const { digest } of link.terminateTls.values()) inUse.add(digest)
    this.terminateTls.retain(inUse)
  }

  private refuseHello(link: AgentLink, err: unknown): void {
    const e = err as GwError
    this.opts.log('warn', 'agent refused', { remote: link.remoteAddress, code: e.code, error: e.message })
    this.events.emit('handshake:failed', { remote: link.remoteAddress, code: e.code ?? 'GW_ERR_NAME_INVALID' })
    link.refuse(e.code ?? 'GW_ERR_NAME_INVALID', e.message)
  }

  /** Where an endpoint of this proto is routed: HTTP by Host, tls by SNI (tcp by port, in `tcp`). */
  private routesFor(proto: EndpointProto | undefined): RouteTable {
    return proto === 'tls' ? this.tlsEdge.routes : this.routes
  }

  private commit(link: AgentLink, owner: string, assigned: AssignedEndpoint[], relays: string[] | undefined): void {
    link.owner = owner
    for (const { name, pooling, proto, port } of assigned) {
      // Same owner: pooled agents share the name; otherwise this is the agent coming back
      // (a laptop waking up, a restart) while the relay still believes in the old
      // connection, and the newcomer wins at once.
      const change = proto === 'tcp' ? this.tcp.add(port!, link, pooling === true) : this.routesFor(proto).add(name, link, pooling === true)
      for (const previous of change.replaced) {
        previous.endpoints = previous.endpoints.filter((e) => e.name !== name || e.proto !== proto)
        if (previous.endpoints.length === 0) {
          previous.notifyAndClose('GW_ERR_REPLACED', `a new connection took over ${proto === 'tcp' ? this.tcp.urlFor(port!) : this.publicHost(name)}`)
        }
      }
    }
    // A verified custom host is pointed here: its certificate is ordered now, so its first
    // visitor does not wait for the order (the manager's limits and backoff still apply).
    for (const { name, proto } of assigned) if (proto === undefined && name.includes('.')) void this.acme?.prepare(name)
    const welcome = (): void => {
      if (link.closed) return
      link.welcome(assigned, this.opts.heartbeatTimeout, relays)
      // After the welcome, which must be the agent's first message from the relay.
      this.internal.join(link)
      this.opts.log('info', 'agent connected', { remote: link.remoteAddress, names: assigned.map((e) => e.name) })
      // The event's names are the HTTP ones and its ports the tcp ones (a cluster announces both); tls endpoints are this relay's own.
      this.events.emit('agent:connected', { remote: link.remoteAddress, token: tokenIdOf(owner), names: httpNames(assigned), ports: tcpPorts(assigned) })
    }
    // In a cluster the names are announced before the welcome: the agent prints its URL
    // on the welcome, and a request through another relay or worker right after must find
    // it (announced after, as before, the first requests there could get a 404).
    const announced = this.cluster?.announceBeforeWelcome(httpNames(assigned))
    const loopbacks = this.loopbacks
    if (!loopbacks && !announced) return welcome()
    // The embedded relay: each http name's own 127.0.0.1 port, listed after its other URLs.
    // Not for terminate-tls ones: the loopback port is plain HTTP.
    void Promise.all([announced, ...(loopbacks ? assigned.filter((e) => e.proto === undefined && e.terminateTls !== true).map(async (endpoint) => {
      const url = await loopbacks.urlFor(endpoint.name)
      if (url) endpoint.urls.push(url)
    }) : [])]).then(welcome)
  }

  /**
   * Refuses a hello that would take its token past its tunnels limit: the distinct names
   * the token's other agents hold, less those this hello asks for again (a reconnect, a
   * pool member), plus the endpoints it asks for.
   */
  private checkTunnels(owner: string, hello: Hello): void {
    if (this.access.limitsOf(owner).tunnels === undefined) return
    const asked = new Set(hello.endpoints.map((e) => (e.proto === 'tcp' ? (e.port !== undefined ? String(e.port) : undefined) : e.host !== undefined ? this.askedName(e.host) : e.name)).filter((n) => n !== undefined))
    const held = new Set<string>()
    for (const link of this.links) {
      if (link.owner !== owner || link.closed) continue
      for (const e of link.endpoints) if (!asked.has(e.name)) held.add(e.name)
    }
    try {
      this.access.checkTunnels(owner, held.size, hello.endpoints.length)
    } catch (err) {
      this.events.emit('limit:hit', { token: tokenIdOf(owner), limit: 'tunnels' })
      throw err
    }
  }

  /** Another relay of the cluster loaded new tokens and limits: this relay runs with them too. */
  applyConfig(doc: SharedConfig): void {
    this.access.replace(doc.tokens, doc.limits)
    this.opts.log('info', 'tokens and limits changed by another relay of the cluster', { tokens: doc.tokens.length, from: doc.relay })
    this.revokeRemovedTokens()
  }

  /** After a reload: the agents of a token that is gone are told so and disconnected. */
  revokeRemovedTokens(): void {
    for (const link of this.links) {
      if (!link.owner || link.closed || this.access.isValid(link.owner)) continue
      this.opts.log('warn', 'agent disconnected: its authtoken was removed', { remote: link.remoteAddress, names: link.endpoints.map((e) => e.name), token: tokenIdOf(link.owner) })
      link.notifyAndClose('GW_ERR_AUTH_REVOKED', 'the authtoken of this agent was removed from the relay; ask the relay operator for a new one')
    }
  }

  /**
   * The name in a full host the agent asked for (`--url app.tunnel.example.com`). A host
   * under any other domain is refused with the reason: serving `app` under our domain
   * instead would hand the user a URL they did not ask for.
   */
  private nameInDomain(requested: string): string {
    const host = requested.trim().toLowerCase().replace(/\.$/, '')
    const domain = this.opts.domain.toLowerCase()
    const label = host.endsWith(`.${domain}`) ? host.slice(0, -domain.length - 1) : undefined
    if (label === undefined || label === '' || label.includes('.')) {
      const why = host === domain ? `${host} is the relay's own host` : `this relay serves *.${domain}, not ${host}${host.endsWith(`.${domain}`) || this.customDomains ? '' : ' (it takes no custom domains: gw relay --custom-domains)'}`
      throw new HandshakeError('GW_ERR_DOMAIN_NOT_SERVED', `${why}; ask for <name>.${domain}, or use a relay that serves ${host.includes('.') ? host.slice(host.indexOf('.') + 1) : host}`)
    }
    return label
  }

  private urlsFor(name: string): string[] {
    const host = this.publicHost(name)
    const urls: string[] = []
    const { http, https, tls } = this.publicPorts
    if (http !== undefined) urls.push(`http://${host}${http === 80 ? '' : `:${http}`}`)
    if (tls && https !== undefined && (!name.includes('.') || this.httpsServes(name))) urls.push(`https://${host}${https === 443 ? '' : `:${https}`}`)
    return urls
  }

  /** `tls://<name>.<domain>` (or the custom host), with the HTTPS port when it is not 443. */
  private tlsUrlFor(name: string): string {
    const https = this.publicPorts.https
    return `tls://${this.publicHost(name)}${https === undefined || https === 443 ? '' : `:${https}`}`
  }

  /**
   * Whether the HTTPS listener has a certificate for a custom host: from ACME (ordered
   * for it on demand), or the operator's own when it names the host. Otherwise its URL is
   * http only, rather than one that fails every handshake.
   */
  private httpsServes(host: string): boolean {
    if (this.acme) return true
    const pem = this.defaultCert
    if (!pem) return false
    if (this.defaultX509?.pem !== pem) this.defaultX509 = { pem, cert: new X509Certificate(pem) }
    return this.defaultX509.cert.checkHost(host) !== undefined
  }

  /** Whether a host the agent asked for is the relay's domain or under it (else it is a custom host). */
  private inDomain(requested: string): boolean {
    const host = requested.trim().toLowerCase().replace(/\.$/, '')
    return host === this.opts.domain || host.endsWith(this.suffix)
  }

  /** The name a requested host stands for, without checking it: its label, or a custom host itself. */
  private askedName(requested: string): string | undefined {
    if (this.customDomains && !this.inDomain(requested)) return requested.trim().toLowerCase().replace(/\.$/, '')
    return this.nameInDomain(requested)
  }

  /**
   * A custom host for `owner` (--custom-domains): refused when another token owns it,
   * then checked in DNS (custom-domains.ts) and claimed like a name. A DNS failure for a
   * host the token already owns admits it on its earlier check, so a resolver outage does
   * not end tunnels at their next reconnect; an answer that no longer points here refuses it.
   */
  private async claimCustomHost(requested: string, owner: string, tlsEndpoint: boolean): Promise<string> {
    const host = checkCustomHost(requested, this.opts.domain)
    this.access.checkName(host, owner)
    // A cluster's relay asks the shared state: another relay may have given the host to another token.
    const current = this.cluster ? await this.cluster.names.fetchOwner(host).catch(() => this.names.owner(host)) : this.names.owner(host)
    if (current !== undefined && current !== owner) {
      throw new HandshakeError('GW_ERR_NAME_TAKEN', `the host ${host} belongs to another authtoken on this relay${this.cluster ? ' (or another relay of its cluster)' : ''}; a custom domain is served for one token`)
    }
    if (!tlsEndpoint && this.publicPorts.http === undefined && !(this.publicPorts.tls && this.publicPorts.https !== undefined && this.httpsServes(host))) {
      throw new HandshakeError('GW_ERR_DOMAIN_NOT_SERVED', `this relay cannot serve ${host}: its HTTP port is off, and its HTTPS certificate does not cover ${host} (it gets one only with ACME, gw relay --acme-email)`)
    }
    try {
      const verified = await this.customDomains!.verify(host, owner)
      this.opts.log('info', 'custom domain verified', { host, by: verified.by, ...(verified.by === 'cname' ? { target: verified.target } : {}), token: tokenIdOf(owner) })
    } catch (err) {
      if (!(err instanceof GwError) || err.code !== 'GW_ERR_CUSTOM_DOMAIN_DNS' || current !== owner) throw err
      this.opts.log('warn', 'custom domain: DNS lookup failed; admitted on its earlier check', { host, code: err.code, error: err.message })
    }
    await this.names.claim(host, owner)
    return host
  }

  /** Requests and tunnelled streams (upgrades included) still open. */
  busy(): number {
    let n = this.inFlight
    for (const link of this.links) n += link.session.streamCount - (link.hello ? 1 : 0)
    return n
  }

  goAwayAll(): void {
    for (const link of this.links) link.session.goAway()
    for (const h2 of this.h2) h2.goAway()
  }

  closeAll(): void {
    this.closing = true
    for (const h2 of this.h2) h2.close()
    for (const link of this.links) link.close()
    this.tlsEdge.closeAll()
    for (const socket of this.sockets) socket.destroy()
    this.wss.close()
  }
}

export type { RelayOptions } from './options.js'
export type { RelayTls }

/**
 * Why a stream to a connected agent could not be opened: a link at its stream limit is
 * busy (503, try again), a link that is closing or going away is as good as offline.
 */
function openFailure(err: unknown): ErrorCode {
  return err instanceof MuxError && err.code === 'GW_ERR_MUX_STREAM_LIMIT' ? 'GW_ERR_RELAY_OVERLOADED' : 'GW_ERR_AGENT_OFFLINE'
}

/** The names of http endpoints: tls endpoints are served by this relay alone, never announced to a cluster. */
function httpNames(endpoints: readonly AssignedEndpoint[]): string[] {
  return endpoints.filter((e) => e.proto === undefined).map((e) => e.name)
}

/** The ports of tcp endpoints, announced to a cluster (cluster/cluster.ts). */
function tcpPorts(endpoints: readonly AssignedEndpoint[]): number[] {
  return endpoints.filter((e) => e.proto === 'tcp' && e.port !== undefined).map((e) => e.port!)
}
