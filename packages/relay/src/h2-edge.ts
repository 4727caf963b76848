/**
 * HTTP/2 on the relay's TLS port. The HTTPS server offers ALPN `h2` and `http/1.1`; a
 * connection that chose `h2` is handed, after its handshake, to a node:http2 session,
 * and every other one stays with the HTTPS server as before. So HTTP/1.1 keeps every
 * limit it has (header size and time, idle time, upgrades), and the ACME TLS-ALPN-01
 * path (acme/tls-front.ts, before TLS starts) is untouched.
 *
 * Each HTTP/2 request becomes the same request as an HTTP/1.1 one: pseudo-headers are
 * dropped from the header list, `:authority` becomes `Host` (a `Host` that names
 * another host is a 400), cookies split over several fields are joined with `; `
 * (RFC 9113 §8.2.3), and the head goes to the agent on a yamux stream through the same
 * routing, limits and access log. HTTP/2 forbids connection-specific fields in
 * requests (nghttp2 resets such a stream) and in responses (the relay strips them, as
 * it strips hop-by-hop fields for HTTP/1.1).
 *
 * Not served over HTTP/2: CONNECT, and so WebSocket over HTTP/2 (RFC 8441). The relay
 * does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL, so browsers open WebSockets on
 * an HTTP/1.1 connection, where the relay upgrades them as ever.
 */
import { createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2'
import { validateHeaderName, validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { GwError, type ErrorCode } from '@gw/protocol'

export interface H2EdgeOptions {
  /**
   * The request head limit, counted as HPACK does (name + value + 32 per field); then 431.
   * Node itself refuses a head past 64 KiB so counted, with a stream reset.
   */
  maxHeaderSize: number
  /** A session with no frame for this long is closed, ms. */
  idleTimeout: number
  /** Streams one client connection may have open at once. */
  maxConcurrentStreams?: number
}

/** Why the edge refuses a request before routing it, answered as gw's error page. */
export interface EdgeRefusal {
  code: ErrorCode
  detail: string
}

export type EdgeRequestHandler = (req: IncomingMessage, res: ServerResponse, refusal: EdgeRefusal | undefined) => void

export interface H2Edge {
  /** Sessions open now. */
  readonly sessions: number
  /** GOAWAY to every session: no new streams, the open ones finish, then each closes. */
  goAway(): void
  /** Cut every session now. */
  close(): void
}

/**
 * Serve HTTP/2 on `tlsServer` (an HTTPS server made with ALPN `h2` first). Requests go
 * to `onRequest` as Node's HTTP/2 compatibility objects, which have the methods of
 * IncomingMessage and ServerResponse that the relay uses.
 */
export function acceptHttp2(tlsServer: TlsServer, options: H2EdgeOptions, onRequest: EdgeRequestHandler): H2Edge {
  const sessions = new Set<ServerHttp2Session>()
  const h2 = createH2Server({
    settings: {
      maxConcurrentStreams: options.maxConcurrentStreams ?? 128,
      // Node resets (REFUSED_STREAM) a stream whose head is past 64 KiB, counted as HPACK
      // does, whatever this says; below that, a head past maxHeaderSize gets a 431.
      maxHeaderListSize: 65535,
      enableConnectProtocol: false,
      enablePush: false,
    },
    maxHeaderListPairs: 2000,
  })
  h2.setTimeout(options.idleTimeout)
  h2.on('session', (session: ServerHttp2Session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    session.on('error', noop) // a peer's protocol error ends its session, nothing more
  })
  h2.on('sessionError', noop)
  const serve = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    const refusal = asHttp1Request(req, options.maxHeaderSize)
    onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, refusal)
  }
  h2.on('request', serve)
  h2.on('checkContinue', serve)
  h2.on('connect', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    asHttp1Request(req, options.maxHeaderSize)
    onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, {
      code: 'GW_ERR_BAD_REQUEST',
      detail: 'CONNECT is not served over HTTP/2 (nor WebSocket over HTTP/2, RFC 8441); open WebSockets over HTTP/1.1',
    })
  })

  // The HTTPS server's own listener parses HTTP/1.1; it keeps every connection but h2 ones.
  const http1 = tlsServer.listeners('secureConnection') as Array<(socket: TLSSocket) => void>
  tlsServer.removeAllListeners('secureConnection')
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return void h2.emit('connection', socket)
    for (const listener of http1) listener.call(tlsServer, socket)
  })

  return {
    get sessions() {
      return sessions.size
    },
    goAway: () => {
      for (const session of sessions) if (!session.closed) session.close()
    },
    close: () => {
      for (const session of sessions) session.destroy()
    },
  }
}

/**
 * Make an HTTP/2 request read as an HTTP/1.1 one: `rawHeaders` without pseudo-headers,
 * with `Host` from `:authority` and cookies joined; `headers.host` set to match. Returns
 * why the request cannot be served, if it cannot.
 */
function asHttp1Request(req: Http2ServerRequest, maxHeaderSize: number): EdgeRefusal | undefined {
  const raw = req.rawHeaders
  let size = 0
  let authority: string | undefined
  const hosts: string[] = []
  const cookies: string[] = []
  const rest: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    size += name.length + value.length + 32
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = value
    } else if (name === 'host') hosts.push(value)
    else if (name === 'cookie') cookies.push(value)
    else rest.push(name, value)
  }
  const out: string[] = []
  if (hosts.length === 0 && authority !== undefined) out.push('host', authority)
  for (const host of hosts) out.push('host', host)
  out.push(...rest)
  if (cookies.length > 0) out.push('cookie', cookies.join('; '))
  Object.defineProperty(req, 'rawHeaders', { value: out, configurable: true })
  const host = hosts[0] ?? authority
  if (host !== undefined) req.headers.host = host
  if (size > maxHeaderSize) return { code: 'GW_ERR_HEADERS_TOO_LARGE', detail: `the request headers exceed ${maxHeaderSize} bytes` }
  if (authority !== undefined && hosts.length === 1 && hosts[0]!.toLowerCase() !== authority.toLowerCase()) {
    return { code: 'GW_ERR_BAD_REQUEST', detail: `the request's Host ${JSON.stringify(hosts[0]!.slice(0, 64))} and :authority ${JSON.stringify(authority.slice(0, 64))} differ` }
  }
  if (host === undefined) return { code: 'GW_ERR_BAD_REQUEST', detail: 'the HTTP/2 request has neither :authority nor Host' }
  return undefined
}

/** Fields HTTP/2 refuses in a message (RFC 9113 §8.2.2); hop-by-hop stripping removes them first. */
const CONNECTION_SPECIFIC = new Set(['connection', 'upgrade', 'http2-settings', 'te', 'transfer-encoding', 'keep-alive', 'proxy-connection'])

/** Fields node:http2 refuses to send twice (its kSingleValueHeaders). */
const SINGLE_VALUE = new Set([
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age',
  'authorization', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5',
  'content-range', 'content-type', 'date', 'dnt', 'etag', 'expires', 'from', 'host', 'if-match',
  'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified', 'location',
  'max-forwards', 'proxy-authorization', 'range', 'referer', 'retry-after', 'tk', 'upgrade-insecure-requests',
  'user-agent', 'x-content-type-options',
])

/**
 * Set an HTTP/2 response's status and headers without sending them: they leave with the
 * first DATA, or, for a response with no body and no trailers, on one HEADERS frame that
 * ends the stream. That is a gRPC "trailers-only" answer (an error status with no
 * message), which a gRPC client reads only in that form. Everything is checked before
 * anything is set, so a head node:http2 would refuse later (at the first write, where
 * the error could not become a 502) is refused here, with nothing half-set.
 */
export function stageHttp2Head(res: ServerResponse, status: number, rawHeaders: string[]): void {
  const seen = new Set<string>()
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase()
    validateHeaderName(name)
    validateHeaderValue(name, rawHeaders[i + 1]!)
    if (CONNECTION_SPECIFIC.has(name)) throw new GwError('GW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream's response has ${name}, which HTTP/2 forbids`)
    if (SINGLE_VALUE.has(name) && seen.has(name)) throw new GwError('GW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream's response has ${name} more than once, which HTTP/2 forbids`)
    seen.add(name)
  }
  res.statusCode = status
  for (let i = 0; i < rawHeaders.length; i += 2) res.appendHeader(rawHeaders[i]!.toLowerCase(), rawHeaders[i + 1]!)
}

/** Whether a request object came over HTTP/2 (Node's compatibility API). */
export function isHttp2(req: IncomingMessage): boolean {
  // Not by the version alone: an HTTP/1 request line may say "HTTP/2.0", and llhttp takes
  // it; such a request has no HTTP/2 stream, and reading one crashed the relay (found by
  // the relay-front fuzzer).
  return req.httpVersionMajor === 2 && (req as unknown as { stream?: unknown }).stream !== undefined
}

/**
 * Whether an HTTP/2 request carries a body: the HEADERS frame did not end the stream.
 * A Content-Length, when given, says it exactly (0 is no body).
 */
export function http2HasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  if (length !== undefined) return Number(length) > 0
  return !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders
}

function noop(): void {}
