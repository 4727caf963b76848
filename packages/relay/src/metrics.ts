/**
 * Prometheus metrics for the relay, through prom-client, served at
 * `http://<--metrics-addr>/metrics`.
 *
 * Labels are bounded: a status class, a direction, an error code from the catalogue,
 * or a token id (8 hex digits of the token's digest, one per configured token). Never
 * a tunnel name, a path or an address: those grow with the traffic.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { RelayError } from './errors.js'
import type { RelayEvents } from './observe.js'
import type { CacheStats } from './cache/store.js'

/** What the metrics read from the relay at scrape time. */
export interface RelayGauges {
  /** Admitted agents, by token id. */
  agentsByToken(): Map<string, number>
  /** Request streams open across all links. */
  openStreams(): number
  /** The shared cache's counters; undefined (and no cache metrics) without --relay-cache. */
  cacheStats?(): CacheStats | undefined
}

export function statusClass(status: number): string {
  if (status >= 100 && status < 600) return `${Math.floor(status / 100)}xx`
  return 'none'
}

export function createRelayMetrics(events: RelayEvents, gauges: RelayGauges): Registry {
  const register = new Registry()
  collectDefaultMetrics({ register, prefix: 'gw_relay_' })

  new Gauge({
    name: 'gw_relay_agents',
    help: 'Agents connected and admitted',
    registers: [register],
    collect() {
      let n = 0
      for (const count of gauges.agentsByToken().values()) n += count
      this.set(n)
    },
  })
  new Gauge({
    name: 'gw_relay_token_agents',
    help: 'Agents connected, by token id (the first 8 hex digits of the token\'s sha256)',
    labelNames: ['token'],
    registers: [register],
    collect() {
      this.reset()
      for (const [token, count] of gauges.agentsByToken()) this.set({ token }, count)
    },
  })
  new Gauge({
    name: 'gw_relay_streams_open',
    help: 'Request streams open to agents (requests and upgraded connections in flight)',
    registers: [register],
    collect() {
      this.set(gauges.openStreams())
    },
  })
  const agentConnections = new Counter({
    name: 'gw_relay_agent_connections_total',
    help: 'Agents admitted since start',
    registers: [register],
  })
  const requests = new Counter({
    name: 'gw_relay_requests_total',
    help: 'HTTP requests finished, by status class (none: no response was sent)',
    labelNames: ['class'],
    registers: [register],
  })
  const bytes = new Counter({
    name: 'gw_relay_bytes_total',
    help: 'Bytes on public client connections, heads included; in: from clients, out: to clients',
    labelNames: ['direction'],
    registers: [register],
  })
  const duration = new Histogram({
    name: 'gw_relay_request_duration_seconds',
    help: 'Time from the request head to the end of the response',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [register],
  })
  const errors = new Counter({
    name: 'gw_relay_error_responses_total',
    help: 'Responses that carried a gw-error-code, by code',
    labelNames: ['code'],
    registers: [register],
  })
  const handshakes = new Counter({
    name: 'gw_relay_handshake_failures_total',
    help: 'Agent handshakes refused or failed, by error code',
    labelNames: ['code'],
    registers: [register],
  })
  const tokenRequests = new Counter({
    name: 'gw_relay_token_requests_total',
    help: 'HTTP requests served by agents, by token id',
    labelNames: ['token'],
    registers: [register],
  })
  const tokenBytes = new Counter({
    name: 'gw_relay_token_bytes_total',
    help: 'Bytes of requests served by agents, by token id and direction',
    labelNames: ['token', 'direction'],
    registers: [register],
  })
  const limits = new Counter({
    name: 'gw_relay_limit_hits_total',
    help: 'Requests or agents refused by a per-token limit, by token id and limit',
    labelNames: ['token', 'limit'],
    registers: [register],
  })
  const reloads = new Counter({
    name: 'gw_relay_config_reloads_total',
    help: 'Config file reloads, by result',
    labelNames: ['result'],
    registers: [register],
  })
  // The hook for ACME (the relay-edge work): emit `acme` on relay.events.
  const acme = new Counter({
    name: 'gw_relay_acme_events_total',
    help: 'ACME events (order, renewal, challenge…), by event and result',
    labelNames: ['event', 'result'],
    registers: [register],
  })

  const tcpConnections = new Counter({
    name: 'gw_relay_tcp_connections_total',
    help: 'Connections to tcp and tls endpoints, by proto and result (ok, reset, refused)',
    labelNames: ['proto', 'result'],
    registers: [register],
  })
  const tcpBytes = new Counter({
    name: 'gw_relay_tcp_bytes_total',
    help: 'Bytes on connections to tcp and tls endpoints, by proto and direction (in: from clients)',
    labelNames: ['proto', 'direction'],
    registers: [register],
  })

  events.on('tcp:end', (r) => {
    tcpConnections.inc({ proto: r.proto, result: r.result })
    tcpBytes.inc({ proto: r.proto, direction: 'in' }, r.bytesIn)
    tcpBytes.inc({ proto: r.proto, direction: 'out' }, r.bytesOut)
  })
  if (gauges.cacheStats?.()) cacheMetrics(register, () => gauges.cacheStats!()!)

  events.on('agent:connected', () => agentConnections.inc())
  events.on('handshake:failed', ({ code }) => handshakes.inc({ code }))
  events.on('limit:hit', ({ token, limit }) => limits.inc({ token, limit }))
  events.on('config:reload', ({ result }) => reloads.inc({ result }))
  events.on('acme', ({ event, result }) => acme.inc({ event, result }))
  events.on('request:end', (r) => {
    requests.inc({ class: statusClass(r.status) })
    bytes.inc({ direction: 'in' }, r.bytesIn)
    bytes.inc({ direction: 'out' }, r.bytesOut)
    duration.observe(r.durationMs / 1000)
    if (r.errorCode) errors.inc({ code: r.errorCode })
    if (r.token) {
      tokenRequests.inc({ token: r.token })
      tokenBytes.inc({ token: r.token, direction: 'in' }, r.bytesIn)
      tokenBytes.inc({ token: r.token, direction: 'out' }, r.bytesOut)
    }
  })
  return register
}

/** The cache's counters, read at scrape time. */
function cacheMetrics(register: Registry, stats: () => CacheStats): void {
  /** A counter kept by the cache itself: prom-client's value is set to it on each scrape. */
  const counter = (name: string, help: string, read: (s: CacheStats) => number): void => {
    new Counter({
      name,
      help,
      registers: [register],
      collect() {
        this.reset()
        this.inc(read(stats()))
      },
    })
  }
  new Counter({
    name: 'gw_relay_cache_requests_total',
    help: 'Requests to cached endpoints, by what the cache did: hit (answered without the agent), revalidated (the agent said 304), miss (the agent sent the response), bypass (not for the cache: method, Authorization or cookies, Range)',
    labelNames: ['result'],
    registers: [register],
    collect() {
      const s = stats()
      this.reset()
      this.inc({ result: 'hit' }, s.hits)
      this.inc({ result: 'revalidated' }, s.revalidated)
      this.inc({ result: 'miss' }, s.misses)
      this.inc({ result: 'bypass' }, s.bypassed)
    },
  })
  counter('gw_relay_cache_served_bytes_total', 'Body bytes answered from the cache (hits and revalidations): bytes the agents\' links did not carry', (s) => s.servedBytes)
  counter('gw_relay_cache_stores_total', 'Responses stored in the cache', (s) => s.stores)
  counter('gw_relay_cache_collapsed_total', 'Hits that waited for another request\'s miss of the same URL instead of going to the agent (request collapsing; part of result="hit")', (s) => s.collapsed)
  counter('gw_relay_cache_evictions_total', 'Stored responses evicted to stay within --relay-cache', (s) => s.evictions)
  new Gauge({
    name: 'gw_relay_cache_bytes',
    help: 'Bytes the cache holds (bodies and heads)',
    registers: [register],
    collect() {
      this.set(stats().bytes)
    },
  })
  new Gauge({
    name: 'gw_relay_cache_entries',
    help: 'URLs the cache holds responses for',
    registers: [register],
    collect() {
      this.set(stats().entries)
    },
  })
  if (!stats().disk) return
  counter('gw_relay_cache_disk_hits_total', 'Hits and revalidations answered with a body read from --relay-cache-dir (part of gw_relay_cache_requests_total)', (s) => s.diskHits)
  counter('gw_relay_cache_disk_writes_total', 'Responses written to --relay-cache-dir', (s) => s.disk?.writes ?? 0)
  counter('gw_relay_cache_disk_writes_dropped_total', 'Responses not written to --relay-cache-dir: the write queue was full or the file system refused (kept in memory only)', (s) => s.disk?.writesDropped ?? 0)
  counter('gw_relay_cache_disk_corrupt_total', 'Files in --relay-cache-dir found corrupt or truncated and removed (never served)', (s) => s.disk?.corrupt ?? 0)
  counter('gw_relay_cache_disk_evictions_total', 'Stored responses removed from --relay-cache-dir to stay within --relay-cache-dir-size', (s) => s.disk?.evictions ?? 0)
  new Gauge({
    name: 'gw_relay_cache_disk_bytes',
    help: 'Bytes of files in --relay-cache-dir (bodies and heads)',
    registers: [register],
    collect() {
      this.set(stats().disk?.bytes ?? 0)
    },
  })
  new Gauge({
    name: 'gw_relay_cache_disk_entries',
    help: 'Stored responses in --relay-cache-dir',
    registers: [register],
    collect() {
      this.set(stats().disk?.entries ?? 0)
    },
  })
}

/** `host:port`, `[v6]:port` or `:port` (loopback). */
export function parseListenAddress(addr: string, flag = '--metrics-addr'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim())
  const port = m ? Number(m[3]) : NaN
  if (!m || port > 65535) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `${flag} "${addr}" is not host:port; give e.g. 127.0.0.1:9464`)
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port }
}

export interface MetricsServer {
  readonly url: string
  close(): Promise<void>
}

/**
 * In a worker of `gw relay --workers`: `register`'s figures go to the primary when it asks
 * (prom-client's cluster aggregation over node:cluster IPC), and the primary serves them,
 * summed over the workers, at --metrics-addr (serveWorkersMetrics).
 */
export function shareMetricsWithPrimary(register: Registry): void {
  AggregatorRegistry.setRegistries([register])
  // Its constructor adds the worker's listener for the primary's requests.
  void new AggregatorRegistry()
}

/** In the primary of `gw relay --workers`: /metrics at `addr`, every worker's figures summed (histogram buckets too). */
export function serveWorkersMetrics(addr: string): Promise<MetricsServer> {
  const aggregator = new AggregatorRegistry()
  return serveMetrics({ metrics: () => aggregator.clusterMetrics(), contentType: aggregator.contentType }, addr)
}

export async function serveMetrics(register: { metrics(): Promise<string>; readonly contentType: string }, addr: string): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(addr)
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics are at /metrics\n')
      return
    }
    register.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': register.contentType, 'content-length': Buffer.byteLength(text) })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`)
      },
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new RelayError('GW_ERR_RELAY_LISTEN', `cannot serve metrics on ${addr}: ${err.code ?? err.message}`, { cause: err })))
    server.listen(port, host, () => resolve())
  })
  const bound = (server.address() as AddressInfo).port
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
