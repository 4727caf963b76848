/**
 * The Exchange record each request gets when someone watches the event stream (the
 * inspector, the TUI, the log lines): made here, for tunnel traffic, upgrades and
 * replays alike, and announced with `exchange:start`.
 */
import type { RequestHead } from '@gw/protocol'
import type { AgentEvents, Exchange } from './events.js'

export function now(): number {
  return performance.timeOrigin + performance.now()
}

export interface ExchangeStart {
  id: string
  tunnel: string
  head: Pick<RequestHead, 'method' | 'target' | 'httpVersion' | 'rawHeaders' | 'remoteAddress' | 'remotePort' | 'scheme' | 'receivedAt'>
  replayOf?: string
  websocket?: boolean
}

export function startExchange(events: AgentEvents, start: ExchangeStart): Exchange {
  const { head } = start
  const exchange: Exchange = {
    id: start.id,
    tunnel: start.tunnel,
    replayOf: start.replayOf,
    request: {
      method: head.method,
      target: head.target,
      httpVersion: head.httpVersion,
      rawHeaders: head.rawHeaders,
      remoteAddress: head.remoteAddress,
      remotePort: head.remotePort,
      scheme: head.scheme,
    },
    response: undefined,
    timing: { relayReceivedAt: head.receivedAt, agentReceivedAt: now(), upstreamStartAt: undefined, upstreamHeadersAt: undefined, endAt: undefined },
    bytesIn: 0,
    bytesOut: 0,
    error: undefined,
    verdict: undefined,
    websocket: start.websocket ? { messagesIn: 0, messagesOut: 0 } : undefined,
  }
  events.emit('exchange:start', exchange)
  return exchange
}
