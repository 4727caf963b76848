/**
 * The agent's one event stream. The terminal UI, the capture ring buffer, the agent API
 * and the log lines all read it; none of them reach into the tunnel or the policy engine.
 * (undici publishes on diagnostics_channel for the same reason.)
 *
 * Emitting costs a listener check when nobody listens, so the request path stays cheap
 * with capture off.
 */
import { EventEmitter } from 'node:events'
import type { RequestHead } from '@gw/protocol'

export type TunnelStatus = 'connecting' | 'online' | 'reconnecting' | 'offline'

export interface TunnelInfo {
  /** The endpoint's name in the agent (`command_line` for `gw http`, or the config name). */
  name: string
  /** The public name at the relay (the first DNS label). */
  publicName: string
  /** Preferred public URL: https when the relay has TLS, else http. */
  publicUrl: string
  publicUrls: string[]
  /** Where requests go, e.g. `http://localhost:3000`. */
  upstream: string
  /** `http1`, or `http2` with `--upstream-protocol http2`. */
  upstreamProtocol: 'http1' | 'http2'
  inspect: boolean
  /** An internal endpoint (`https://<name>.internal`): reached by forward-internal and http-request, not from the relay's public side. */
  internal?: true
}

export interface AgentStatus {
  status: TunnelStatus
  relay: string
  /** The embedded relay on 127.0.0.1 is in use. */
  embedded: boolean
  /** Reconnect attempt number while reconnecting, 0 otherwise. */
  attempt: number
  /** Last round-trip time to the relay, by yamux ping, in ms. */
  latencyMs: number | undefined
  lastError: { code: string; message: string } | undefined
  tunnels: TunnelInfo[]
  /** The internal endpoints, listed after the public ones in the agent API. */
  internal?: TunnelInfo[]
  version: string
}

/** Every endpoint of the agent: the public ones, then the internal ones. */
export function allEndpoints(status: AgentStatus): TunnelInfo[] {
  return status.internal ? [...status.tunnels, ...status.internal] : status.tunnels
}

/** The request as it reached the agent, in the head's own terms. */
export type ExchangeRequest = Pick<RequestHead, 'method' | 'target' | 'httpVersion' | 'rawHeaders' | 'remoteAddress' | 'remotePort' | 'scheme'>

export interface ExchangeResponse {
  status: number
  statusMessage: string
  rawHeaders: string[]
}

/** One request through the agent: created on arrival, filled in as it goes. */
export interface Exchange {
  id: string
  tunnel: string
  /** Set for requests the agent replayed itself. */
  replayOf: string | undefined
  request: ExchangeRequest
  response: ExchangeResponse | undefined
  /** Epoch ms timestamps; `relayReceivedAt` comes from the relay's head. */
  timing: {
    relayReceivedAt: number
    agentReceivedAt: number
    upstreamStartAt: number | undefined
    upstreamHeadersAt: number | undefined
    endAt: number | undefined
  }
  bytesIn: number
  bytesOut: number
  /** A gw error that ended the exchange (upstream refused, timeout…). */
  error: { code: string; message: string } | undefined
  /** Set when a policy rule answered instead of the upstream (401, 429…). */
  verdict: { action: string; rule: string | undefined; status: number } | undefined
  /** For upgraded connections (WebSocket): frames seen each way. */
  websocket: { messagesIn: number; messagesOut: number } | undefined
}

export interface AgentEventMap {
  status: [AgentStatus]
  /** A log line for humans and for `--log-format`; `fields` become logfmt/JSON keys. */
  log: [{ level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> }]
  'exchange:start': [Exchange]
  'exchange:request-body': [Exchange, Buffer]
  'exchange:response': [Exchange]
  'exchange:response-body': [Exchange, Buffer]
  'exchange:end': [Exchange]
  /** A tcp or tls endpoint's connection the policy let through; the agent dials the upstream. */
  'conn:start': [TcpConnection]
  /** That connection closed: bytes each way (in: client to upstream). */
  'conn:end': [TcpConnection]
}

/** One connection to a tcp or tls endpoint, for the metrics and the log lines. */
export interface TcpConnection {
  /** The agent-side endpoint name, as `Exchange.tunnel`. */
  tunnel: string
  remoteAddress: string
  /** Epoch ms when the relay accepted it. */
  connectedAt: number
  bytesIn: number
  bytesOut: number
}

export class AgentEvents extends EventEmitter<AgentEventMap> {}
