/**
 * The timing split the TUI and the inspector show: relay → agent → upstream.
 *
 * `relayReceivedAt` is stamped by the relay's clock and the rest by the agent's, so the
 * first leg is only as good as the two clocks agree; a negative leg (clock skew) is shown
 * as unknown rather than as a negative time.
 */
import type { Exchange } from '../agent/events.js'

export interface TimingSplit {
  /** Relay had the head → agent had it (tunnel transit). */
  relayToAgentMs: number | undefined
  /** Agent had it → upstream request started (policy, connection pool). */
  agentToUpstreamMs: number | undefined
  /** Upstream request started → response headers (the upstream's think time). */
  upstreamMs: number | undefined
  /** Response headers → last byte. */
  transferMs: number | undefined
  /** Agent had the head → last byte; ngrok's `duration`. */
  totalMs: number | undefined
}

function leg(from: number | undefined, to: number | undefined): number | undefined {
  if (from === undefined || to === undefined) return undefined
  const ms = to - from
  return ms >= 0 ? ms : undefined
}

export function timingSplit(exchange: Exchange): TimingSplit {
  const t = exchange.timing
  return {
    relayToAgentMs: leg(t.relayReceivedAt, t.agentReceivedAt),
    agentToUpstreamMs: leg(t.agentReceivedAt, t.upstreamStartAt),
    upstreamMs: leg(t.upstreamStartAt, t.upstreamHeadersAt),
    transferMs: leg(t.upstreamHeadersAt, t.endAt),
    totalMs: leg(t.agentReceivedAt, t.endAt),
  }
}

/** `850µs`, `12ms`, `1.52s`, `2m05s`. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  if (ms < 1) return `${Math.round(ms * 1000)}µs`
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`
  const s = Math.round(ms / 1000)
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}

/** `0B`, `512B`, `1.5KB`, `12MB`, in powers of 1024. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n}B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let v = n
  let u = -1
  do {
    v /= 1024
    u++
  } while (v >= 1024 && u < units.length - 1)
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`
}
