/**
 * The contract between the agent's request pipeline and the policy engine. The agent
 * builds a `PolicyRequest` from the relay's request head, creates one `PolicyState` per
 * request, and calls `onHttpRequest` before the upstream and `onHttpResponse` after it.
 */
import type { Readable } from 'node:stream'
import type { UpstreamTarget } from '../upstream/index.js'

/** One incoming request; actions may mutate it (headers, target, body). */
export interface PolicyRequest {
  method: string
  /** Path and query as received; `req.url.path` and `.query` derive from it. */
  target: string
  /** Flat `[name, value, …]`; order, case and duplicates kept. */
  rawHeaders: string[]
  /** The public Host. */
  host: string
  /** `tcp` and `tls` only in on_tcp_connect, where the request is the connection (no method, no headers). */
  scheme: 'http' | 'https' | 'tcp' | 'tls'
  clientIp: string
  clientPort: number
  /** Epoch ms when the relay had the whole request head: `req.ts.header_received`. */
  receivedAt: number
  /**
   * Epoch ms when the relay accepted the client's connection: `conn.ts.start`. A relay
   * that does not say (an older one) leaves it out, and `receivedAt` stands in.
   */
  connectedAt?: number
  /** The client's TLS connection to the relay (conn.tls.*); absent for plain http. */
  tls?: { version: string; cipher: string; sni: string; alpn: string; resumed: boolean; client?: { pem: string } }
  /**
   * Streamed. An action that must read it (validate-request, transform-body, soap,
   * verify-webhook) reads it with a size cap (413 above) and replaces it.
   */
  body: Readable
}

export interface PolicyResponse {
  status: number
  rawHeaders: string[]
  body: Readable
  /**
   * Set on an answer that is an error of gw's own (a failed transform, a body too
   * large): the agent names it in `gw-error-code`. A header of that name in
   * `rawHeaders` is always dropped, so only this field can set it.
   */
  errorCode?: string
  /** close-connection: no response at all; the relay closes the client's connection. */
  close?: boolean
}

/** A log line for the agent's event stream; `fields` become logfmt/JSON keys. */
export interface PolicyLogEntry {
  level: 'debug' | 'info' | 'warn' | 'error'
  msg: string
  fields: Record<string, unknown>
}

/**
 * Where the policy reports log lines (the `log` action, failing expressions, pool
 * events). The agent's event stream satisfies it; the policy does not depend on the
 * agent.
 */
export interface PolicyEvents {
  emit(event: 'log', entry: PolicyLogEntry): unknown
  /** When it says nobody listens, a log line is not even formatted. */
  listenerCount?(event: 'log'): number
}

export interface PolicyVerdict {
  action: string
  rule: string | undefined
  status: number
}

export type RequestOutcome =
  /** A terminating action answered (401, 429, redirect, custom-response…). */
  | { kind: 'respond'; response: PolicyResponse; verdict: PolicyVerdict; errorCode?: string }
  /** Go on to the upstream; undefined means the endpoint's default upstream. */
  | { kind: 'forward'; upstream: UpstreamTarget | undefined }
  /** forward-internal: the agent's internal endpoint `host` takes the request. */
  | { kind: 'internal'; host: string }

export type Phase = 'on_http_request' | 'on_http_response' | 'on_event_stream_message' | 'on_tcp_connect'

/** What kind of endpoint a policy is for: its phases follow (on_tcp_connect for tcp and tls, the HTTP phases for http). */
export type EndpointKind = 'http' | 'tcp' | 'tls'

/**
 * on_tcp_connect ended: which rule and action did. Without `internal` the connection is
 * closed (`errorCode` says why when an action failed); with it, forward-internal hands it
 * to that tcp or tls internal endpoint (`tcp://camera.internal:22`).
 */
export interface TcpVerdict {
  action: string
  rule: string | undefined
  internal?: string
  errorCode?: string
}
