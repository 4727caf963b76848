/**
 * The typed heads that open each request stream, and the control-stream messages.
 * Headers travel as a flat list of raw pairs `[name, value, name, value, …]`, as Node's
 * `rawHeaders`, so order, case and duplicates survive the tunnel.
 */
import { createHash } from 'node:crypto'
import { GwError, isErrorCode, type ErrorCode } from './errors.js'

/** Bumped on any incompatible change to messages or heads. */
export const PROTOCOL_VERSION = 1

export interface RequestHead {
  method: string
  /** The request-target as the client sent it: path and query. */
  target: string
  httpVersion: string
  rawHeaders: string[]
  remoteAddress: string
  remotePort: number
  scheme: 'http' | 'https'
  /** The public name the request was routed by. */
  tunnel: string
  /** Epoch milliseconds (fractional) when the relay had the whole head. */
  receivedAt: number
  /** An Upgrade request (WebSocket…): after a 101 the stream carries raw bytes. */
  upgrade: boolean
  /** The client sent `Expect: 100-continue` and waits for CONTINUE before its body. */
  expectContinue: boolean
  /**
   * The request has a body (Content-Length above 0 or chunked). Transfer-Encoding is a
   * hop-by-hop header the relay drops, so without this the agent could not tell.
   */
  hasBody: boolean
  /**
   * The relay's id for this request, also in its access log: the agent records the
   * request under it, so the inspector and the relay's log name a request alike.
   * Letters, digits, `_` and `-`, at most 64. A relay that has no ids leaves it out.
   */
  requestId?: string
  /**
   * The client's TLS connection to the relay, for an https request (ngrok's
   * `conn.tls.*`): version as `1.2`/`1.3`, the IANA cipher suite name, the SNI, the
   * negotiated ALPN protocol, and whether the session was resumed.
   */
  tls?: ConnectionTls
  /**
   * forward-internal hops the request took before it came here, when another agent of
   * the token sent it through the relay to one of this agent's internal endpoints: the
   * loop limit counts across agents.
   */
  hops?: number
}

export interface ConnectionTls {
  version: string
  cipher: string
  sni: string
  alpn: string
  resumed: boolean
  /**
   * The connection went through a terminate-tls (its versions, its client certificate
   * rules): the `terminateTlsDigest` of the one it went through. The agent refuses a
   * request for an endpoint with terminate-tls whose head lacks its own digest (a relay
   * that does not know the field, another relay of a cluster, a connection made for
   * another name), so the rules are never skipped silently.
   */
  terminateTls?: string
  /** The client's certificate, when it sent one on a terminate-tls connection (ngrok's `conn.tls.client.*`). */
  client?: ClientCertificate
}

export interface ClientCertificate {
  /** The leaf certificate, PEM: the agent reads the subject, issuer, SANs… from it. */
  pem: string
}

/** A client certificate's PEM longer than this is not sent (nor accepted) in a head. */
export const MAX_CLIENT_CERT_PEM = 16 * 1024

const PEM_CERT = /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/

function isTls(t: unknown): t is ConnectionTls {
  const v = t as ConnectionTls
  return typeof v === 'object' && v !== null && typeof v.version === 'string' && typeof v.cipher === 'string' &&
    typeof v.sni === 'string' && typeof v.alpn === 'string' && typeof v.resumed === 'boolean' &&
    (v.terminateTls === undefined || (typeof v.terminateTls === 'string' && /^[0-9a-f]{64}$/.test(v.terminateTls))) &&
    (v.client === undefined || (typeof v.client === 'object' && v.client !== null && typeof v.client.pem === 'string' &&
      v.client.pem.length <= MAX_CLIENT_CERT_PEM && PEM_CERT.test(v.client.pem)))
}

/** The shape a relay's request id must have for the agent to use it. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

export interface ResponseHead {
  status: number
  statusMessage?: string
  rawHeaders: string[]
  /** Set when the response is a gw error page; the relay renders it and sets `gw-error-code`. */
  error?: { code: ErrorCode; message: string }
  /**
   * A response the agent made itself (a policy's 401 or 429) with its own body: the
   * relay sets `gw-error-code` to this. Only this field can set that header; the relay
   * strips it from `rawHeaders`.
   */
  errorCode?: string
  /**
   * The policy's close-connection: the relay closes the client's connection and writes
   * no response (the head's status is what an older relay writes instead).
   */
  close?: boolean
}

/** What an endpoint carries: HTTP requests, raw TCP connections, or TLS connections routed by SNI and never decrypted. */
export type EndpointProto = 'http' | 'tcp' | 'tls'

export const ENDPOINT_PROTOS: readonly EndpointProto[] = ['http', 'tcp', 'tls']

export interface EndpointRequest {
  /** A requested name (http and tls); omitted for a random one. */
  name?: string
  /**
   * The full host the user asked for (`--url app.example.com`). The relay refuses it with
   * GW_ERR_DOMAIN_NOT_SERVED unless it is `<name>.<its domain>`, instead of quietly
   * serving `<name>` under another domain; a relay that takes custom domains serves a host
   * outside its domain once DNS points it there, and assigns the host itself as the name.
   */
  host?: string
  /** `--pooling-enabled`: share the name with other agents that ask for pooling. */
  pooling?: boolean
  /**
   * A tcp endpoint's public port (`--url tcp://host:20001`); omitted for one from the
   * relay's range. An older relay refuses any proto but http as a malformed hello.
   */
  port?: number
  /** `--relay-cache`: the relay may answer from its shared HTTP cache (when it keeps one). */
  relayCache?: boolean
  /**
   * An https endpoint's terminate-tls (its policy's on_tcp_connect), which the relay runs
   * since it ends the endpoint's TLS: the TLS versions, and the CAs client certificates
   * must chain to. A relay that runs it says so in the welcome (`AssignedEndpoint.terminateTls`);
   * the agent refuses to serve the endpoint on one that does not (an older relay skips the field).
   */
  terminateTls?: TerminateTlsRequest
  proto: EndpointProto
}

export interface TerminateTlsRequest {
  minVersion: '1.2' | '1.3'
  maxVersion: '1.2' | '1.3'
  /** PEM CA certificates; empty: no client certificate is asked for. */
  clientCas: string[]
  /** ngrok's mutual_tls_verification_strategy. */
  clientVerify: 'require-and-verify' | 'require-any' | 'request'
}

/** CAs one endpoint's terminate-tls may list, and the PEM text they may take in all. */
export const MAX_TERMINATE_TLS_CAS = 32
export const MAX_TERMINATE_TLS_CA_BYTES = 256 * 1024

/** The one name both sides give a terminate-tls: sha-256 of its fields in a fixed order. */
export function terminateTlsDigest(t: TerminateTlsRequest): string {
  return createHash('sha256').update(JSON.stringify([t.minVersion, t.maxVersion, t.clientVerify, t.clientCas.map((c) => c.trim())])).digest('hex')
}

const TLS_VERSIONS: readonly string[] = ['1.2', '1.3']
const CLIENT_VERIFY: readonly string[] = ['require-and-verify', 'require-any', 'request']

function isTerminateTls(t: unknown): t is TerminateTlsRequest {
  const v = t as TerminateTlsRequest
  return typeof v === 'object' && v !== null && TLS_VERSIONS.includes(v.minVersion) && TLS_VERSIONS.includes(v.maxVersion) &&
    !(v.minVersion === '1.3' && v.maxVersion === '1.2') && CLIENT_VERIFY.includes(v.clientVerify) &&
    Array.isArray(v.clientCas) && v.clientCas.length <= MAX_TERMINATE_TLS_CAS &&
    v.clientCas.every((c) => typeof c === 'string' && c.includes('-----BEGIN CERTIFICATE-----')) &&
    v.clientCas.reduce((n, c) => n + c.length, 0) <= MAX_TERMINATE_TLS_CA_BYTES
}

export interface Hello {
  version: number
  authtoken: string
  /**
   * A random id the agent keeps for its whole life. On an anonymous relay, names belong
   * to it, so an agent that reconnects keeps its name and another agent cannot take it.
   */
  agentId: string
  client: string
  endpoints: EndpointRequest[]
}

export interface AssignedEndpoint {
  name: string
  /** Set by a relay that pools this name; a relay that does not know pooling leaves it out. */
  pooling?: boolean
  /** Set by a relay that caches this endpoint's responses; one without a cache leaves it out. */
  relayCache?: boolean
  /** Set by a relay that runs the endpoint's terminate-tls; an older relay leaves it out, and the agent then refuses to serve. */
  terminateTls?: boolean
  /** Public URLs: http first, then https when the relay has TLS; `tcp://host:port` or `tls://host:port` for those endpoints. */
  urls: string[]
  /** A tcp endpoint's public port; the agent asks for it again when it reconnects. */
  port?: number
  /** `tcp` or `tls` for those endpoints; left out for http (and by relays older than TCP endpoints). */
  proto?: 'tcp' | 'tls'
}

/**
 * The head of a raw TCP stream, which the relay opens for each connection a client makes
 * to a tcp or tls endpoint. After it the stream carries the connection's bytes, both
 * ways: a FIN is the client's (or upstream's) half-close, a reset is a reset.
 */
export interface TcpHead {
  proto: 'tcp' | 'tls'
  /** The assigned endpoint's name (the port as digits for tcp, the name for tls). */
  tunnel: string
  remoteAddress: string
  remotePort: number
  /** The public port the client connected to. */
  serverPort: number
  /** The SNI the client sent (tls only). */
  serverName?: string
  /** Epoch ms when the relay accepted the connection: `conn.ts.start`. */
  connectedAt: number
  /**
   * forward-internal hops the connection took before it came here, when another agent of
   * the token sent it through the relay to one of this agent's tcp or tls internal
   * endpoints (`tunnel` is then `tcp://name.internal:port`). Absent from the relay's own.
   */
  hops?: number
}

export interface Welcome {
  version: number
  endpoints: AssignedEndpoint[]
  /** The relay's heartbeat timeout in ms, so both sides agree when a link is dead. */
  heartbeatTimeout: number
  /**
   * A relay of a cluster: the URLs where the agent may reach the cluster's relays, to
   * reconnect to another one when this one goes. Absent on a lone relay.
   */
  relays?: string[]
}

export interface Refuse {
  code: ErrorCode
  message: string
}

export interface Notice {
  code: ErrorCode
  message: string
}

/**
 * The relay answered a request from its cache, without a stream (relay → agent, on the
 * control stream), so the agent's inspector and request log show it. An agent that does
 * not know the message skips it.
 */
export interface CacheHit {
  /** The relay's id of the request, as in a REQUEST_HEAD. */
  requestId: string
  /** The tunnel's public name. */
  tunnel: string
  method: string
  target: string
  httpVersion: string
  rawHeaders: string[]
  remoteAddress: string
  remotePort: number
  scheme: 'http' | 'https'
  receivedAt: number
  status: number
  /** The headers the client got, Cache-Status included. */
  responseRawHeaders: string[]
  /** Body bytes the client got. */
  bytes: number
}

/**
 * Internal endpoints (`https://api.internal`), on the control stream, both ways. An
 * agent tells the relay the internal endpoints it serves; the relay tells each agent of
 * a token which internal endpoints that token's agents serve on it, so forward-internal
 * can reach another agent's: the agent opens a stream to the relay, writes the host on
 * a line, then a request as the relay would send one (relay/internal-endpoints.ts). Each
 * message replaces the last. A side that does not know the message skips it, so an agent
 * and a relay that predate it keep to the agent's own internal endpoints.
 */
export interface InternalEndpoints {
  endpoints: InternalEndpoint[]
  /**
   * tcp and tls internal endpoints (`tcp://camera.internal:22`, `tls://db.internal:443`),
   * in their own list so a relay or agent that predates them, which skips the field,
   * never takes one for an HTTP host. A stream for one starts with the line
   * `tcp://camera.internal:22`, then a TCP_HEAD and the connection's raw bytes.
   */
  raw?: RawInternalEndpoint[]
}

export interface RawInternalEndpoint {
  proto: 'tcp' | 'tls'
  /** `camera.internal:22`: the port always given (443 for tls when the URL leaves it out). */
  host: string
  /** Several agents of a token may serve it together (agent → relay only). */
  pooling?: boolean
}

export interface InternalEndpoint {
  /** `api.internal`, or `api.internal:8080` when its URL names a port. */
  host: string
  /** Several agents of a token may serve it together (agent → relay only). */
  pooling?: boolean
}

/** Internal endpoints one message may name. */
export const MAX_INTERNAL_ENDPOINTS = 256

/** `<labels>.internal` with an optional port, lower case: the first line of an agent's internal-request stream. */
export const INTERNAL_HOST_PATTERN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}internal(?::\d{1,5})?$/

/** `<labels>.internal:<port>`, lower case, the port required: a tcp or tls internal endpoint's host. */
export const INTERNAL_RAW_HOST_PATTERN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}internal:\d{1,5}$/

/** `tcp://camera.internal:22` or `tls://db.internal:443`: the first line of an agent's stream for a tcp or tls internal endpoint. */
export const INTERNAL_RAW_TARGET_PATTERN = /^(?:tcp|tls):\/\/(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}internal:\d{1,5}$/

export function checkInternalEndpoints(value: unknown): InternalEndpoints {
  const m = value as InternalEndpoints
  if (
    typeof m !== 'object' || m === null || !Array.isArray(m.endpoints) || m.endpoints.length > MAX_INTERNAL_ENDPOINTS ||
    !m.endpoints.every((e) => typeof e === 'object' && e !== null && typeof e.host === 'string' && INTERNAL_HOST_PATTERN.test(e.host) &&
      (e.pooling === undefined || typeof e.pooling === 'boolean')) ||
    (m.raw !== undefined && (!Array.isArray(m.raw) || m.raw.length > MAX_INTERNAL_ENDPOINTS ||
      !m.raw.every((e) => typeof e === 'object' && e !== null && (e.proto === 'tcp' || e.proto === 'tls') &&
        typeof e.host === 'string' && INTERNAL_RAW_HOST_PATTERN.test(e.host) && isPort(Number(e.host.slice(e.host.lastIndexOf(':') + 1)), false) &&
        (e.pooling === undefined || typeof e.pooling === 'boolean'))))
  ) fail('internal endpoints')
  return m
}

function fail(what: string): never {
  throw new GwError('GW_ERR_MESSAGE_MALFORMED', `malformed ${what}`)
}

function isRawHeaders(value: unknown): value is string[] {
  return Array.isArray(value) && value.length % 2 === 0 && value.every((v) => typeof v === 'string')
}

export function checkRequestHead(value: unknown): RequestHead {
  const h = value as RequestHead
  if (
    typeof h !== 'object' || h === null ||
    typeof h.method !== 'string' || typeof h.target !== 'string' ||
    typeof h.httpVersion !== 'string' || !isRawHeaders(h.rawHeaders) ||
    typeof h.remoteAddress !== 'string' || typeof h.remotePort !== 'number' ||
    (h.scheme !== 'http' && h.scheme !== 'https') || typeof h.tunnel !== 'string' ||
    typeof h.receivedAt !== 'number' || typeof h.upgrade !== 'boolean' ||
    typeof h.expectContinue !== 'boolean' || typeof h.hasBody !== 'boolean' ||
    (h.requestId !== undefined && (typeof h.requestId !== 'string' || !REQUEST_ID_PATTERN.test(h.requestId))) ||
    (h.tls !== undefined && !isTls(h.tls)) ||
    (h.hops !== undefined && (!Number.isInteger(h.hops) || h.hops < 0 || h.hops > 64))
  ) fail('request head')
  return h
}

export function checkTcpHead(value: unknown): TcpHead {
  const h = value as TcpHead
  if (
    typeof h !== 'object' || h === null || (h.proto !== 'tcp' && h.proto !== 'tls') ||
    typeof h.tunnel !== 'string' || typeof h.remoteAddress !== 'string' ||
    !isPort(h.remotePort, true) || !isPort(h.serverPort, false) || typeof h.connectedAt !== 'number' ||
    (h.serverName !== undefined && typeof h.serverName !== 'string') ||
    (h.hops !== undefined && (!Number.isInteger(h.hops) || h.hops < 0 || h.hops > 64))
  ) fail('tcp head')
  return h
}

function isPort(value: unknown, zero: boolean): boolean {
  return Number.isInteger(value) && (value as number) >= (zero ? 0 : 1) && (value as number) <= 65535
}

export function checkResponseHead(value: unknown): ResponseHead {
  const h = value as ResponseHead
  if (
    typeof h !== 'object' || h === null ||
    !Number.isInteger(h.status) || h.status < 100 || h.status > 999 ||
    !isRawHeaders(h.rawHeaders) ||
    (h.statusMessage !== undefined && typeof h.statusMessage !== 'string') ||
    (h.error !== undefined && (!isErrorCode(h.error.code) || typeof h.error.message !== 'string')) ||
    (h.errorCode !== undefined && (typeof h.errorCode !== 'string' || !/^GW_ERR_[A-Z0-9_]{1,64}$/.test(h.errorCode))) ||
    (h.close !== undefined && typeof h.close !== 'boolean')
  ) fail('response head')
  return h
}

export function checkCacheHit(value: unknown): CacheHit {
  const h = value as CacheHit
  if (
    typeof h !== 'object' || h === null ||
    typeof h.requestId !== 'string' || !REQUEST_ID_PATTERN.test(h.requestId) || typeof h.tunnel !== 'string' ||
    typeof h.method !== 'string' || typeof h.target !== 'string' || typeof h.httpVersion !== 'string' ||
    !isRawHeaders(h.rawHeaders) || typeof h.remoteAddress !== 'string' || typeof h.remotePort !== 'number' ||
    (h.scheme !== 'http' && h.scheme !== 'https') || typeof h.receivedAt !== 'number' ||
    !Number.isInteger(h.status) || h.status < 100 || h.status > 999 || !isRawHeaders(h.responseRawHeaders) ||
    typeof h.bytes !== 'number'
  ) fail('cache hit')
  return h
}

export function checkHello(value: unknown): Hello {
  const h = value as Hello
  if (
    typeof h !== 'object' || h === null || typeof h.version !== 'number' ||
    typeof h.authtoken !== 'string' || typeof h.agentId !== 'string' || typeof h.client !== 'string' ||
    // No endpoints: an agent that serves only internal endpoints (announced after the welcome).
    !Array.isArray(h.endpoints) || h.endpoints.length > 64 ||
    !h.endpoints.every((e) => typeof e === 'object' && e !== null && ENDPOINT_PROTOS.includes(e.proto) &&
      (e.name === undefined || typeof e.name === 'string') &&
      (e.port === undefined || (e.proto === 'tcp' && isPort(e.port, false))) &&
      (e.host === undefined || typeof e.host === 'string') &&
      (e.pooling === undefined || typeof e.pooling === 'boolean') &&
      (e.relayCache === undefined || typeof e.relayCache === 'boolean') &&
      (e.terminateTls === undefined || (e.proto === 'http' && isTerminateTls(e.terminateTls))))
  ) fail('hello')
  return h
}

export function checkWelcome(value: unknown): Welcome {
  const w = value as Welcome
  if (
    typeof w !== 'object' || w === null || typeof w.version !== 'number' ||
    typeof w.heartbeatTimeout !== 'number' || !Array.isArray(w.endpoints) ||
    !w.endpoints.every((e) => typeof e?.name === 'string' && Array.isArray(e.urls) && (e.port === undefined || isPort(e.port, false)) && (e.proto === undefined || e.proto === 'tcp' || e.proto === 'tls') && (e.terminateTls === undefined || typeof e.terminateTls === 'boolean'))
  ) fail('welcome')
  return w
}

export function checkCodedMessage(value: unknown, what: string): Refuse {
  const r = value as Refuse
  if (typeof r !== 'object' || r === null || !isErrorCode(r.code) || typeof r.message !== 'string') fail(what)
  return r
}

/**
 * Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), with
 * `HTTP2-Settings` (connection-specific, RFC 7540 §3.2.1; HTTP/2 refuses it in a message).
 * `Trailer` is not among them: it announces end-to-end trailers, which gw passes through.
 */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
])

/** Drop hop-by-hop headers, and those the Connection header names. Keeps order and case. */
export function stripHopByHop(rawHeaders: string[], keepUpgrade = false): string[] {
  let named: Set<string> | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'connection') {
      named ??= new Set()
      for (const token of rawHeaders[i + 1]!.split(',')) named.add(token.trim().toLowerCase())
    }
  }
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase()
    if (keepUpgrade && (name === 'connection' || name === 'upgrade')) {
      out.push(rawHeaders[i]!, rawHeaders[i + 1]!)
      continue
    }
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!)
  }
  return out
}

/** The first value of a header in a raw list, by lower-case name. */
export function getRawHeader(rawHeaders: string[], lowerName: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === lowerName) return rawHeaders[i + 1]
  }
  return undefined
}

/** Remove every occurrence of the given lower-case names. */
export function removeRawHeaders(rawHeaders: string[], lowerNames: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!lowerNames.has(rawHeaders[i]!.toLowerCase())) out.push(rawHeaders[i]!, rawHeaders[i + 1]!)
  }
  return out
}

/** The path at which agents open their WebSocket, on any Host that is not a tunnel name. */
export const AGENT_PATH = '/_gw/agent'
