/**
 * The wire codes: the ones the relay and the agent exchange (in notices, ABORT and error
 * messages) and answer public clients with. The CLI's and the relay's own codes live in
 * their packages' catalogues (packages/cli/src/errors.ts, packages/relay/src/errors.ts),
 * all on the CodedError below. Every error gw raises on purpose carries a stable `code`. Codes are never reused;
 * docs/errors.md lists each one with what it means and what to do, and
 * test/docs/errors-table.test.ts fails when the two disagree.
 *
 * `status` is the HTTP status a public client sees when the error ends a request.
 */
export const ErrorCodes = {
  // Multiplexer (yamux) link and stream errors.
  GW_ERR_MUX_PROTOCOL: { status: 502, message: 'the peer sent a malformed yamux frame' },
  GW_ERR_MUX_VERSION: { status: 502, message: 'the peer speaks an unsupported yamux version' },
  GW_ERR_MUX_FRAME_TOO_LARGE: { status: 502, message: 'a yamux frame exceeded the maximum frame size' },
  GW_ERR_MUX_WINDOW_EXCEEDED: { status: 502, message: 'the peer sent more data than the receive window allows' },
  GW_ERR_MUX_STREAM_RESET: { status: 502, message: 'the peer reset the stream' },
  GW_ERR_MUX_CLOSED: { status: 502, message: 'the tunnel link closed' },
  GW_ERR_MUX_KEEPALIVE_TIMEOUT: { status: 502, message: 'the peer did not answer a keepalive ping in time' },
  GW_ERR_MUX_GOAWAY: { status: 502, message: 'the peer is going away and accepts no new streams' },
  GW_ERR_MUX_STREAM_LIMIT: { status: 502, message: 'too many streams are open on the link' },

  // Stream messages (heads, body chunks) on top of the multiplexer.
  GW_ERR_MESSAGE_MALFORMED: { status: 502, message: 'a stream message could not be decoded' },
  GW_ERR_MESSAGE_TOO_LARGE: { status: 502, message: 'a stream message exceeded its size limit' },

  // Handshake on the control stream.
  GW_ERR_HANDSHAKE_VERSION: { status: 400, message: 'the agent and relay speak incompatible protocol versions' },
  GW_ERR_HANDSHAKE_TIMEOUT: { status: 408, message: 'the handshake did not complete in time' },
  GW_ERR_HANDSHAKE_TOO_LARGE: { status: 400, message: 'the agent sent too many bytes before its handshake completed' },
  GW_ERR_AUTH_REQUIRED: { status: 401, message: 'this relay requires an authtoken' },
  GW_ERR_AUTH_INVALID: { status: 401, message: 'the authtoken is not valid on this relay' },
  GW_ERR_NAME_TAKEN: { status: 409, message: 'the name belongs to another authtoken' },
  GW_ERR_NAME_INVALID: { status: 400, message: 'the requested name is not a valid DNS label' },
  GW_ERR_NAME_LIMIT: { status: 429, message: 'the authtoken already holds as many names as the relay allows' },
  GW_ERR_NAME_RESERVED: { status: 400, message: 'the requested name is reserved by the relay' },
  GW_ERR_DOMAIN_NOT_SERVED: { status: 400, message: 'the requested host is not under a domain this relay serves' },
  // Custom domains (gw relay --custom-domains).
  GW_ERR_CUSTOM_DOMAIN_UNVERIFIED: { status: 403, message: 'the custom domain does not point at this relay (no CNAME to its domain, no TXT record for the authtoken)' },
  GW_ERR_CUSTOM_DOMAIN_DNS: { status: 503, message: 'the relay could not look up the custom domain in DNS' },
  GW_ERR_REPLACED: { status: 409, message: 'another connection with the same authtoken took over this name' },
  // TCP and TLS endpoints (gw tcp, gw tls).
  GW_ERR_TCP_DISABLED: { status: 400, message: 'this relay serves no TCP endpoints' },
  GW_ERR_TCP_PORT_TAKEN: { status: 409, message: 'the TCP port belongs to another authtoken' },
  GW_ERR_TCP_PORT_UNAVAILABLE: { status: 400, message: 'the TCP port is outside the relay\'s range or cannot be listened on' },
  GW_ERR_TCP_PORTS_EXHAUSTED: { status: 503, message: 'every TCP port in the relay\'s range is taken' },
  GW_ERR_TLS_DISABLED: { status: 400, message: 'this relay has no TLS port to serve TLS endpoints on' },
  GW_ERR_TCP_CONNECTION_LIMIT: { status: 503, message: 'the TCP endpoint has as many connections open as the relay allows' },

  // Public-facing errors the relay answers with.
  GW_ERR_TUNNEL_NOT_FOUND: { status: 404, message: 'no tunnel is registered under this name' },
  GW_ERR_AGENT_OFFLINE: { status: 502, message: 'the agent that holds this name is not connected' },
  GW_ERR_INTERNAL_ENDPOINT_OFFLINE: { status: 502, message: 'no agent of this authtoken serves that internal endpoint on the relay or its cluster' },
  GW_ERR_UPSTREAM_REFUSED: { status: 502, message: 'the agent could not connect to the upstream service' },
  GW_ERR_UPSTREAM_FAILED: { status: 502, message: 'the upstream connection failed while the request was in flight' },
  GW_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'the upstream service did not answer in time' },
  GW_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, message: 'the upstream service sent an invalid HTTP response' },
  GW_ERR_AGENT_BAD_RESPONSE: { status: 502, message: 'the agent sent a response head or body the relay refuses' },
  GW_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'the request headers exceed the size limit' },
  GW_ERR_HEADERS_TIMEOUT: { status: 408, message: 'the request headers did not arrive in time' },
  GW_ERR_BAD_REQUEST: { status: 400, message: 'the request could not be parsed' },
  GW_ERR_EXPECTATION_FAILED: { status: 417, message: 'the request has an Expect other than 100-continue' },
  GW_ERR_RELAY_OVERLOADED: { status: 503, message: 'the relay cannot open another stream to the agent right now' },
  GW_ERR_RELAY_DRAINING: { status: 503, message: 'the relay is shutting down and takes no new agents or connections' },
  // A relay of a cluster (--redis) that cannot reach the shared state.
  GW_ERR_CLUSTER_UNAVAILABLE: { status: 503, message: 'the relay cannot reach the cluster\'s shared state (Redis, or the primary process of --workers) right now' },
  // Per-token limits and token changes from the relay's config file.
  GW_ERR_AUTH_REVOKED: { status: 401, message: 'the authtoken was removed from the relay' },
  GW_ERR_TUNNEL_LIMIT: { status: 429, message: 'the authtoken already holds as many tunnels as its limit allows' },
  GW_ERR_STREAM_LIMIT: { status: 503, message: 'the authtoken has as many requests in flight as its limit allows' },
  GW_ERR_RATE_LIMITED: { status: 429, message: 'the authtoken made more requests per second than its limit allows' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, message: "the request body exceeds the authtoken's body size limit" },
  // terminate-tls on https endpoints (mutual TLS, TLS versions), which the relay runs for the agent.
  GW_ERR_TERMINATE_TLS_INVALID: { status: 400, message: "the relay cannot run the endpoint's terminate-tls (CAs or versions it cannot load, or a relay of a cluster)" },
  GW_ERR_TERMINATE_TLS_MISMATCH: { status: 409, message: 'a pooled agent asked for other terminate-tls settings than the agents already holding the name' },
  GW_ERR_MISDIRECTED_REQUEST: { status: 421, message: "the request came on a connection that did not go through the endpoint's terminate-tls (another name's TLS connection, or plain HTTP)" },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ErrorCodes

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value)
}

/**
 * The base of every error gw raises on purpose, in any package: a stable `GW_ERR_…`
 * code from one of the code tables (this one, the policy engine's, the inspector's) and
 * the HTTP status it ends a request with. The CLI, the relay and the agent API tell gw's
 * own errors from bugs by this class alone.
 */
export class CodedError extends Error {
  readonly code: string
  readonly status: number

  constructor(code: string, status: number, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'CodedError'
    this.code = code
    this.status = status
  }
}

/** An error with a code from the protocol's table above. */
export class GwError extends CodedError {
  declare readonly code: ErrorCode

  constructor(code: ErrorCode, message: string = ErrorCodes[code].message, options?: ErrorOptions) {
    super(code, ErrorCodes[code].status, message, options)
    this.name = 'GwError'
  }
}

/** A multiplexer failure: the whole link, or one stream (see `streamId`). */
export class MuxError extends GwError {
  readonly streamId: number | undefined

  constructor(code: ErrorCode, message?: string, streamId?: number, options?: ErrorOptions) {
    super(code, message, options)
    this.name = 'MuxError'
    this.streamId = streamId
  }
}

/** The handshake was refused or broke; the agent shows `message` and exits or retries. */
export class HandshakeError extends GwError {
  constructor(code: ErrorCode, message?: string, options?: ErrorOptions) {
    super(code, message, options)
    this.name = 'HandshakeError'
  }
}

/** A request could not reach the upstream; the relay turns it into an error page. */
export class UpstreamError extends GwError {
  constructor(code: ErrorCode, message?: string, options?: ErrorOptions) {
    super(code, message, options)
    this.name = 'UpstreamError'
  }
}
