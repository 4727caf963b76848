/**
 * The Exchange record of one request, for whoever reads the event stream (the
 * inspector, the TUI, the log lines). Recording is switched on by configuration
 * (`AgentOptions.record`), not by who listens: with it off, a request makes no record
 * and emits nothing.
 *
 * A `Recorder` is made per request by the pipeline (tunnel traffic, upgrades and replays
 * alike) and announces `exchange:start`; `end()` announces `exchange:end` once.
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

export class Recorder {
  readonly exchange: Exchange
  private readonly events: AgentEvents

  constructor(events: AgentEvents, start: ExchangeStart) {
    const { head } = start
    this.events = events
    this.exchange = {
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
    events.emit('exchange:start', this.exchange)
  }

  requestBody(chunk: Buffer): void {
    this.exchange.bytesIn += chunk.length
    this.events.emit('exchange:request-body', this.exchange, chunk)
  }

  upstreamStart(): void {
    this.exchange.timing.upstreamStartAt = now()
  }

  upstreamHead(): void {
    this.exchange.timing.upstreamHeadersAt = now()
  }

  response(status: number, statusMessage: string, rawHeaders: string[]): void {
    this.exchange.response = { status, statusMessage, rawHeaders }
    this.events.emit('exchange:response', this.exchange)
  }

  responseBody(chunk: Buffer): void {
    this.exchange.bytesOut += chunk.length
    this.events.emit('exchange:response-body', this.exchange, chunk)
  }

  verdict(verdict: NonNullable<Exchange['verdict']>): void {
    this.exchange.verdict = verdict
  }

  /** Once; later calls are ignored. */
  end(error?: { code: string; message: string }): void {
    if (this.exchange.timing.endAt !== undefined) return
    this.exchange.timing.endAt = now()
    if (error) this.exchange.error = error
    this.events.emit('exchange:end', this.exchange)
  }
}
