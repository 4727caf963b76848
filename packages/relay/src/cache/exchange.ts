/**
 * One request through the relay's cache (RFC 9111, as a shared cache):
 *
 * - GET and HEAD only; any other method goes to the agent, and a non-error answer to an
 *   unsafe one (POST, PUT, DELETE…) drops what is stored for its URL (§4.4).
 * - A fresh stored response that matches the request's `Vary` values is answered here,
 *   without the agent (a hit); a stale one is revalidated with the agent through a
 *   conditional request (`If-None-Match` / `If-Modified-Since`), and a 304 answers the
 *   client from the cache.
 * - A request with `Authorization` or cookies is answered from the cache only by a
 *   response that said so explicitly (`public`, `s-maxage` or `must-revalidate`); such a
 *   response is the only one stored for it. A response with `Set-Cookie` is stored only
 *   when `public`. `private` and `no-store` are never stored (http-cache-semantics).
 * - Requests with a body or a `Range`, and answers gw made itself (a policy's 401), pass by.
 *
 * Every response of a cached endpoint says what the cache did in `Cache-Status` (RFC 9211).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import CachePolicy from 'http-cache-semantics'
import type { CacheHit, RequestHead } from '@gw/protocol'
import { buildRequestHead } from '../forwarded-head.js'
import type { CacheResult, TrackedRequest } from '../observe.js'
import { responseHasBody } from '../agent-response.js'
import { sendErrorPage, type ResponseTap } from '../relay-request.js'
import { RelayCache, type Variant } from './store.js'

/** This cache's name in Cache-Status. */
const CACHE_NAME = 'gw'
const CONDITIONALS = new Set(['if-none-match', 'if-modified-since'])
const EXPLICIT = /(?:^|,)\s*(?:public|s-maxage|must-revalidate)\b/i
const UNSAFE = new Set(['POST', 'PUT', 'DELETE', 'PATCH'])

type Mode = 'pass' | 'fill' | 'revalidate'

/**
 * Starts a request's cache exchange. Returns undefined when the cache answered the client
 * already; otherwise the tap to give relayRequest, after `prepare(head)`.
 */
export function beginCache(
  cache: RelayCache, req: IncomingMessage, res: ServerResponse, name: string, scheme: 'http' | 'https', tracked: TrackedRequest,
  onHit: (hit: CacheHit) => void,
): CacheExchange | undefined {
  const method = req.method ?? 'GET'
  const target = req.url ?? '/'
  const key = RelayCache.key(name, scheme, target)
  const x = new CacheExchange(cache, req, res, name, key, tracked, scheme, onHit)
  if (method !== 'GET' && method !== 'HEAD') return x.pass('fwd=method', UNSAFE.has(method))
  if (req.headers.range !== undefined) return x.pass('fwd=bypass; detail=range')
  if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0') return x.pass('fwd=bypass; detail=body')

  const personal = req.headers.authorization !== undefined ? 'authorization' : req.headers.cookie !== undefined ? 'cookie' : undefined
  x.personal = personal !== undefined
  let variant: Variant | undefined
  let varyMiss = false
  for (const v of cache.variants(key)) {
    if (v.varyKey === varyKeyOf(v.vary, req.headers)) variant = v
    else varyMiss = true
  }
  if (variant && personal && !variant.explicit) return x.pass(`fwd=bypass; detail=${personal}`)
  if (!variant) {
    if (method === 'HEAD') return x.pass(varyMiss ? 'fwd=vary-miss' : 'fwd=miss', false, 'misses')
    return x.fill(varyMiss ? 'fwd=vary-miss' : 'fwd=miss')
  }
  const result = variant.policy.evaluateRequest(x.asked)
  if (result.response && !result.revalidation) {
    x.serve(variant, 'hit', `hit; ttl=${Math.max(0, Math.round(variant.policy.timeToLive() / 1000))}`)
    return undefined
  }
  const why = /no-cache/i.test(`${req.headers['cache-control'] ?? ''} ${req.headers.pragma ?? ''}`) ? 'fwd=request' : 'fwd=stale'
  if (method === 'HEAD') return x.pass(why, false, 'misses')
  // The stored response's own validators, in place of any the client sent (RFC 9111 §4.3.1).
  const stored = variant.policy.responseHeaders()
  const conditional: string[] = []
  if (typeof stored.etag === 'string') conditional.push('if-none-match', stored.etag)
  if (typeof stored['last-modified'] === 'string') conditional.push('if-modified-since', stored['last-modified'])
  if (conditional.length === 0) return x.fill(why)
  return x.revalidate(variant, conditional, why)
}

export class CacheExchange implements ResponseTap {
  /** The request as http-cache-semantics sees it: always GET (a HEAD is answered from the GET), Host the tunnel name. */
  readonly asked: CachePolicy.Request
  personal = false
  private mode: Mode = 'pass'
  private status = ''
  private invalidates = false
  private variant: Variant | undefined
  private conditional: string[] = []
  private pending: { policy: CachePolicy; status: number; headerBytes: number; explicit: boolean; vary: string[] } | undefined
  private chunks: Buffer[] = []
  private bytes = 0

  constructor(
    private readonly cache: RelayCache,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly name: string,
    private readonly key: string,
    private readonly tracked: TrackedRequest,
    private readonly scheme: 'http' | 'https',
    private readonly onHit: (hit: CacheHit) => void,
  ) {
    this.asked = { url: req.url ?? '/', method: 'GET', headers: { ...req.headers, host: name } }
  }

  pass(status: string, invalidates = false, counted: 'bypassed' | 'misses' = 'bypassed'): this {
    this.count(counted === 'bypassed' ? 'bypass' : 'miss')
    this.status = status
    this.invalidates = invalidates
    return this
  }

  fill(status: string): this {
    this.mode = 'fill'
    this.status = status
    return this
  }

  revalidate(variant: Variant, conditional: string[], status: string): this {
    this.mode = 'revalidate'
    this.variant = variant
    this.conditional = conditional
    this.status = status
    return this
  }

  private count(result: CacheResult): void {
    this.tracked.cache = result
    const counts = this.cache.counts
    if (result === 'hit') counts.hits++
    else if (result === 'revalidated') counts.revalidated++
    else if (result === 'miss') counts.misses++
    else counts.bypassed++
  }

  /** A revalidation asks the agent with the stored response's validators instead of the client's. */
  prepare(head: RequestHead): void {
    if (this.mode !== 'revalidate') return
    const raw: string[] = []
    for (let i = 0; i < head.rawHeaders.length; i += 2) {
      if (!CONDITIONALS.has(head.rawHeaders[i]!.toLowerCase())) raw.push(head.rawHeaders[i]!, head.rawHeaders[i + 1]!)
    }
    head.rawHeaders = [...raw, ...this.conditional]
  }

  head(status: number, headers: string[], agentAnswer: boolean): boolean {
    if (this.mode === 'pass') {
      if (this.invalidates && status < 400) this.cache.remove(this.key)
      headers.push('cache-status', `${CACHE_NAME}; ${this.status}`)
      return false
    }
    const fields = headersObject(headers)
    if (this.mode === 'revalidate' && status === 304) {
      const variant = this.variant!
      const { policy, modified } = variant.policy.revalidatedPolicy(this.asked, { status, headers: fields })
      if (modified) {
        this.cache.remove(this.key, variant)
        sendErrorPage(this.req, this.res, 'GW_ERR_AGENT_BAD_RESPONSE', 'the upstream answered the cache\'s revalidation with 304 for another version of the response')
        return true
      }
      this.cache.refresh(this.key, variant, policy)
      this.serve(variant, 'revalidated', `${this.status}; fwd-status=304`)
      return true
    }
    this.count('miss')
    const forwarded = this.mode === 'revalidate' ? `${this.status}; fwd-status=${status}` : this.status
    this.mode = 'fill'
    const policy = this.storable(status, fields, agentAnswer, headers)
    if (policy) this.pending = policy
    headers.push('cache-status', `${CACHE_NAME}; ${forwarded}${policy ? '; stored' : ''}`)
    return false
  }

  data(chunk: Buffer): void {
    if (!this.pending) return
    this.bytes += chunk.length
    if (this.bytes > this.cache.maxEntryBytes) {
      this.pending = undefined
      this.chunks = []
      return
    }
    this.chunks.push(chunk)
  }

  end(trailers: boolean): void {
    const pending = this.pending
    this.pending = undefined
    if (!pending || trailers) return
    const body = Buffer.concat(this.chunks, this.bytes)
    this.chunks = []
    this.cache.store(this.key, this.name, {
      policy: pending.policy,
      status: pending.status,
      body,
      vary: pending.vary,
      varyKey: varyKeyOf(pending.vary, this.req.headers),
      explicit: pending.explicit,
    }, pending.headerBytes)
  }

  /** What may be stored of this response, or undefined. */
  private storable(status: number, fields: CachePolicy.Headers, agentAnswer: boolean, headers: string[]): CacheExchange['pending'] {
    if (agentAnswer || status === 206 || status === 304 || this.req.method !== 'GET') return undefined
    const policy = new CachePolicy(this.asked, { status, headers: fields }, { shared: true })
    if (!policy.storable() || fields.vary === '*') return undefined
    if (policy.timeToLive() <= 0 && fields.etag === undefined && fields['last-modified'] === undefined) return undefined
    const explicit = EXPLICIT.test(String(fields['cache-control'] ?? ''))
    if (this.personal && !explicit) return undefined
    if (fields['set-cookie'] !== undefined && !/(?:^|,)\s*public\b/i.test(String(fields['cache-control'] ?? ''))) return undefined
    const length = Number(fields['content-length'] ?? 0)
    let headerBytes = 0
    for (const h of headers) headerBytes += h.length
    if (length + headerBytes > this.cache.maxEntryBytes) return undefined
    const vary = typeof fields.vary === 'string' ? fields.vary.toLowerCase().split(',').map((f) => f.trim()).filter(Boolean) : []
    return { policy, status, headerBytes, explicit, vary }
  }

  /** Answer the client from a stored response. */
  serve(variant: Variant, kind: 'hit' | 'revalidated', cacheStatus: string): void {
    const req = this.req
    const res = this.res
    const headers = variant.policy.responseHeaders() as Record<string, string | string[]>
    let status = variant.status
    let body = responseHasBody(req.method, status) ? variant.body : undefined
    if (status === 200 && notModified(req.headers, headers)) {
      status = 304
      body = undefined
      delete headers['content-length']
    } else if (responseHasBody('GET', status)) {
      headers['content-length'] = String(variant.body.length)
    }
    const prior = headers['cache-status']
    headers['cache-status'] = prior ? `${String(prior)}, ${CACHE_NAME}; ${cacheStatus}` : `${CACHE_NAME}; ${cacheStatus}`
    this.count(kind)
    try {
      res.writeHead(status, headers)
    } catch {
      res.destroy()
      return
    }
    if (body && body.length > 0) {
      this.cache.counts.servedBytes += body.length
      res.write(body)
    }
    res.end()
    // The agent never saw a hit: tell it, for its inspector (a revalidation went through it).
    if (kind === 'hit') this.notify(status, headers, body?.length ?? 0)
  }

  private notify(status: number, headers: Record<string, string | string[]>, bytes: number): void {
    const head = buildRequestHead(this.req, this.name, this.scheme, false)
    const responseRawHeaders: string[] = []
    for (const [name, value] of Object.entries(headers)) {
      for (const v of Array.isArray(value) ? value : [value]) responseRawHeaders.push(name, String(v))
    }
    this.onHit({
      requestId: this.tracked.id,
      tunnel: this.name,
      method: head.method,
      target: head.target,
      httpVersion: head.httpVersion,
      rawHeaders: head.rawHeaders,
      remoteAddress: head.remoteAddress,
      remotePort: head.remotePort,
      scheme: head.scheme,
      receivedAt: head.receivedAt,
      status,
      responseRawHeaders,
      bytes,
    })
  }
}

/** The request's values of the headers a stored response varies on. */
function varyKeyOf(vary: readonly string[], headers: IncomingHttpHeaders): string {
  return vary.length === 0 ? '' : JSON.stringify(vary.map((f) => headers[f] ?? null))
}

/** A flat header list as http-cache-semantics wants it: lower-case names, Set-Cookie a list, others joined. */
function headersObject(flat: string[]): CachePolicy.Headers {
  const out: Record<string, string | string[]> = {}
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase()
    const value = flat[i + 1]!
    if (name === 'set-cookie') {
      const list = out[name]
      if (Array.isArray(list)) list.push(value)
      else out[name] = [value]
    } else {
      const prior = out[name]
      out[name] = prior === undefined ? value : `${String(prior)}, ${value}`
    }
  }
  return out
}

/** The client's own conditional request against a stored 200 (RFC 9110 §13.1.2, §13.1.3). */
function notModified(req: IncomingHttpHeaders, headers: Record<string, string | string[]>): boolean {
  const inm = req['if-none-match']
  const etag = typeof headers.etag === 'string' ? headers.etag : undefined
  if (inm !== undefined) {
    if (inm.trim() === '*') return true
    if (!etag) return false
    const weak = (t: string): string => t.trim().replace(/^W\//, '')
    return inm.split(',').some((t) => weak(t) === weak(etag))
  }
  const ims = req['if-modified-since']
  const lastModified = typeof headers['last-modified'] === 'string' ? Date.parse(headers['last-modified']) : NaN
  return ims !== undefined && !Number.isNaN(lastModified) && lastModified <= Date.parse(ims)
}
