/**
 * Traffic metrics in ngrok's shape (`conns` and `http`, each with count, rates and
 * percentiles), for `/api/tunnels` and the TUI's `ttl opn rt1 rt5 p50 p90` line.
 *
 * ngrok computes them with go-metrics, so these follow the same definitions, so that
 * numbers read the same side by side:
 * - rates are exponentially weighted moving averages per second over 1, 5 and 15
 *   minutes, ticked every 5 s (go-metrics' EWMA). The ticks are applied lazily when a
 *   value is marked or read, so an idle agent runs no timer;
 * - percentiles are over the last 1,028 durations (go-metrics' default reservoir size),
 *   in nanoseconds, as ngrok's API reports them.
 *
 * `conns` counts every stream the relay opened (WebSockets and tcp/tls connections
 * included), from its start, with `gauge` the ones still open; `http` counts finished
 * HTTP exchanges, upgrades excluded.
 */
import type { AgentEvents, Exchange, TcpConnection } from '../agent/events.js'

const TICK_MS = 5000
const RESERVOIR = 1028

export interface ConnsMetrics {
  count: number
  gauge: number
  rate1: number
  rate5: number
  rate15: number
  p50: number
  p90: number
  p95: number
  p99: number
}

export type HttpMetrics = Omit<ConnsMetrics, 'gauge'>

export interface MetricsSnapshot {
  conns: ConnsMetrics
  http: HttpMetrics
  /** Body bytes from public clients (in) and back to them (out). */
  bytes: { in: number; out: number }
}

export interface Metrics {
  /** One tunnel by its name, or every tunnel together. */
  snapshot(tunnel?: string): MetricsSnapshot
  /** Stop listening to the agent. */
  close(): void
}

/** An exponentially weighted moving average of events per second (go-metrics' EWMA). */
class Ewma {
  private rate = 0
  private initialised = false
  private readonly alpha: number

  constructor(minutes: number) {
    this.alpha = 1 - Math.exp(-TICK_MS / 1000 / 60 / minutes)
  }

  /** `ticks` 5-second ticks passed; `uncounted` events arrived during the first one. */
  tick(ticks: number, uncounted: number): void {
    if (ticks <= 0) return
    const instant = uncounted / (TICK_MS / 1000)
    if (this.initialised) this.rate += this.alpha * (instant - this.rate)
    else {
      this.rate = instant
      this.initialised = true
    }
    // The other ticks saw no events: each one decays the rate by (1 - alpha).
    if (ticks > 1) this.rate *= Math.pow(1 - this.alpha, ticks - 1)
  }

  get value(): number {
    return this.rate
  }
}

/** A meter (count and rates) and a timer (percentiles over a sliding reservoir). */
class Series {
  count = 0
  private uncounted = 0
  private lastTick: number
  private readonly m1 = new Ewma(1)
  private readonly m5 = new Ewma(5)
  private readonly m15 = new Ewma(15)
  private readonly samples = new Float64Array(RESERVOIR)
  private filled = 0
  private next = 0

  constructor(now: number) {
    this.lastTick = now
  }

  private advance(now: number): void {
    const ticks = Math.floor((now - this.lastTick) / TICK_MS)
    if (ticks <= 0) return
    this.m1.tick(ticks, this.uncounted)
    this.m5.tick(ticks, this.uncounted)
    this.m15.tick(ticks, this.uncounted)
    this.uncounted = 0
    this.lastTick += ticks * TICK_MS
  }

  mark(now: number): void {
    this.advance(now)
    this.count++
    this.uncounted++
  }

  time(durationNs: number): void {
    this.samples[this.next] = durationNs
    this.next = (this.next + 1) % RESERVOIR
    if (this.filled < RESERVOIR) this.filled++
  }

  read(now: number): HttpMetrics {
    this.advance(now)
    const sorted = this.samples.slice(0, this.filled).sort()
    return {
      count: this.count,
      rate1: this.m1.value,
      rate5: this.m5.value,
      rate15: this.m15.value,
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p95: percentile(sorted, 0.95),
      p99: percentile(sorted, 0.99),
    }
  }
}

/** go-metrics' percentile: linear interpolation at position p·(n+1). */
function percentile(sorted: Float64Array, p: number): number {
  const n = sorted.length
  if (n === 0) return 0
  const pos = p * (n + 1)
  if (pos < 1) return sorted[0]!
  if (pos >= n) return sorted[n - 1]!
  const lower = sorted[Math.floor(pos) - 1]!
  const upper = sorted[Math.floor(pos)]!
  return lower + (pos - Math.floor(pos)) * (upper - lower)
}

class TunnelMetrics {
  readonly conns: Series
  readonly http: Series
  gauge = 0
  bytesIn = 0
  bytesOut = 0

  constructor(now: number) {
    this.conns = new Series(now)
    this.http = new Series(now)
  }

  snapshot(now: number): MetricsSnapshot {
    const { count, rate1, rate5, rate15, p50, p90, p95, p99 } = this.conns.read(now)
    return {
      conns: { count, gauge: this.gauge, rate1, rate5, rate15, p50, p90, p95, p99 },
      http: this.http.read(now),
      bytes: { in: this.bytesIn, out: this.bytesOut },
    }
  }
}

function durationNs(exchange: Exchange, now: number): number {
  const end = exchange.timing.endAt ?? now
  return Math.max(0, Math.round((end - exchange.timing.agentReceivedAt) * 1e6))
}

/**
 * @example
 * const metrics = createMetrics(events)
 * metrics.snapshot('command_line').http.p90 // ns
 */
export function createMetrics(events: AgentEvents, clock: () => number = Date.now): Metrics {
  const total = new TunnelMetrics(clock())
  const byTunnel = new Map<string, TunnelMetrics>()
  /** Body bytes already counted per open exchange, to reconcile with its totals at the end. */
  const seen = new Map<string, { in: number; out: number }>()

  function tunnel(name: string, now: number): TunnelMetrics {
    let t = byTunnel.get(name)
    if (t === undefined) {
      t = new TunnelMetrics(now)
      byTunnel.set(name, t)
    }
    return t
  }

  function onStart(exchange: Exchange): void {
    const now = clock()
    for (const t of [total, tunnel(exchange.tunnel, now)]) {
      t.conns.mark(now)
      t.gauge++
    }
    seen.set(exchange.id, { in: 0, out: 0 })
  }

  function onRequestBody(exchange: Exchange, chunk: Buffer): void {
    const s = seen.get(exchange.id)
    if (s !== undefined) s.in += chunk.length
    total.bytesIn += chunk.length
    tunnel(exchange.tunnel, clock()).bytesIn += chunk.length
  }

  function onResponseBody(exchange: Exchange, chunk: Buffer): void {
    const s = seen.get(exchange.id)
    if (s !== undefined) s.out += chunk.length
    total.bytesOut += chunk.length
    tunnel(exchange.tunnel, clock()).bytesOut += chunk.length
  }

  function onEnd(exchange: Exchange): void {
    const now = clock()
    const s = seen.get(exchange.id)
    if (s === undefined) return // started before we listened
    seen.delete(exchange.id)
    // Upgraded streams may carry bytes the agent counts without body events.
    const extraIn = Math.max(0, exchange.bytesIn - s.in)
    const extraOut = Math.max(0, exchange.bytesOut - s.out)
    const ns = durationNs(exchange, now)
    const upgraded = exchange.response?.status === 101 || exchange.websocket !== undefined
    for (const t of [total, tunnel(exchange.tunnel, now)]) {
      t.gauge = Math.max(0, t.gauge - 1)
      t.conns.time(ns)
      t.bytesIn += extraIn
      t.bytesOut += extraOut
      if (!upgraded) {
        t.http.mark(now)
        t.http.time(ns)
      }
    }
  }

  function onConnStart(conn: TcpConnection): void {
    const now = clock()
    for (const t of [total, tunnel(conn.tunnel, now)]) {
      t.conns.mark(now)
      t.gauge++
    }
  }

  function onConnEnd(conn: TcpConnection): void {
    const now = clock()
    const ns = Math.max(0, Math.round((now - conn.connectedAt) * 1e6))
    for (const t of [total, tunnel(conn.tunnel, now)]) {
      t.gauge = Math.max(0, t.gauge - 1)
      t.conns.time(ns)
      t.bytesIn += conn.bytesIn
      t.bytesOut += conn.bytesOut
    }
  }

  events.on('exchange:start', onStart)
  events.on('exchange:request-body', onRequestBody)
  events.on('exchange:response-body', onResponseBody)
  events.on('exchange:end', onEnd)
  events.on('conn:start', onConnStart)
  events.on('conn:end', onConnEnd)

  return {
    snapshot(name) {
      const now = clock()
      if (name === undefined) return total.snapshot(now)
      return (byTunnel.get(name) ?? new TunnelMetrics(now)).snapshot(now)
    },
    close() {
      events.off('exchange:start', onStart)
      events.off('exchange:request-body', onRequestBody)
      events.off('exchange:response-body', onResponseBody)
      events.off('exchange:end', onEnd)
      events.off('conn:start', onConnStart)
      events.off('conn:end', onConnEnd)
    },
  }
}
