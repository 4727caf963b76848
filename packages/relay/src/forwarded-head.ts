/**
 * Builds the head the relay sends to the agent for a client request: the client's
 * headers minus hop-by-hop ones, plus X-Forwarded-For (appended), -Proto and -Host.
 * The client's Host stays; the agent rewrites it when asked to.
 */
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { stripHopByHop, type ConnectionTls, type RequestHead } from '@gw/protocol'
import { http2HasBody, isHttp2 } from './h2-edge.js'
import { clientCertificateOf, terminatedBy } from './terminate-tls.js'

/** The client's TLS connection, for the policy's conn.tls.*: `TLSv1.3` is sent as `1.3`, as ngrok names it. */
function connectionTls(socket: IncomingMessage['socket']): ConnectionTls | undefined {
  const tls = socket as TLSSocket
  if (typeof tls.getProtocol !== 'function' || !tls.encrypted) return undefined
  const protocol = tls.getProtocol() ?? ''
  // A terminate-tls connection (terminate-tls.ts): which one, and the client's certificate.
  const terminateTls = terminatedBy(socket)
  const client = terminateTls === undefined ? undefined : clientCertificateOf(socket)
  return {
    ...(terminateTls !== undefined ? { terminateTls } : {}),
    ...(client ? { client } : {}),
    version: protocol.replace(/^TLSv/, ''),
    cipher: tls.getCipher()?.standardName ?? '',
    sni: typeof tls.servername === 'string' ? tls.servername : '',
    alpn: typeof tls.alpnProtocol === 'string' ? tls.alpnProtocol : '',
    resumed: tls.isSessionReused(),
  }
}

export function buildRequestHead(req: IncomingMessage, tunnel: string, scheme: 'http' | 'https', upgrade: boolean): RequestHead {
  const remoteAddress = normalizeAddress(req.socket.remoteAddress ?? '')
  const rawHeaders = stripHopByHop(req.rawHeaders, upgrade)
  let forwardedFor: string | undefined
  let host = ''
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const lower = name.toLowerCase()
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? rawHeaders[i + 1]! : `${forwardedFor}, ${rawHeaders[i + 1]}`
      continue
    }
    // The relay is the edge: what the client claims about proto and host is replaced.
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue
    if (lower === 'host') host = rawHeaders[i + 1]!
    out.push(name, rawHeaders[i + 1]!)
  }
  out.push(
    'X-Forwarded-For', forwardedFor === undefined ? remoteAddress : `${forwardedFor}, ${remoteAddress}`,
    'X-Forwarded-Proto', scheme,
    'X-Forwarded-Host', host,
  )
  const tls = scheme === 'https' ? connectionTls(req.socket) : undefined
  return {
    ...(tls ? { tls } : {}),
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    httpVersion: req.httpVersion,
    rawHeaders: out,
    remoteAddress,
    remotePort: req.socket.remotePort ?? 0,
    scheme,
    tunnel,
    receivedAt: performance.timeOrigin + performance.now(),
    upgrade,
    expectContinue: /100-continue/i.test(req.headers.expect ?? ''),
    // HTTP/2 has no Transfer-Encoding: a body without Content-Length is one whose HEADERS did not end the stream.
    hasBody: isHttp2(req) ? http2HasBody(req) : req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0,
  }
}

/** `::ffff:127.0.0.1` → `127.0.0.1`: users and CIDR rules expect the IPv4 form. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}
