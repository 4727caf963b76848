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
 *
 * Concurrent misses of one URL are collapsed: while one GET's miss is answered by the
 * agent, the others wait for it (at most COLLAPSE_WAIT_MS, as nginx's proxy_cache_lock)
 * and are then answered from what it stored (`hit; detail=collapsed`); when it stored
 * nothing (private, no-store, too large), they go to the agent at once.
 *
 * A variant only the directory holds (--relay-cache-dir) is opened before anything else
 * is decided (beginCache returns a promise then): a file gone or cut short is a miss.
 * Its body is streamed from the file, checked against its digest, and kept in memory
 * again when it fits.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import CachePolicy from 'http-cache-semantics'
import type { CacheHit, RequestHead } from '@gw/protocol'
import { buildRequestHead } from '../forwarded-head.js'
import type { CacheResult, TrackedRequest } from '../observe.js'
import { responseHasBody } from '../agent-response.js'
import { sendErrorPage, type ResponseTap } from '../relay-request.js'
import { RelayCache, type Variant } from './store.js'
import { PRELOAD_BYTES, type DiskBody } from './disk.js'

/** This cache's name in Cache-Status. */
const CACHE_NAME = 'gw'
const CONDITIONALS = new Set(['if-none-match', 'if-modified-since'])
const EXPLICIT = /(?:^|,)\s*(?:public|s-maxage|must-revalidate)\b/i
const UNSAFE = new Set(['POST', 'PUT', 'DELETE', 'PATCH'])
/** How long a miss waits for another request's miss of the same URL before it goes to the agent itself. */
export const COLLAPSE_WAIT_MS = 5_000

type Mode = 'pass' | 'fill' | 'revalidate'

/**
 * Starts a request's cache exchange. Returns undefined when the cache answered the client
 * already; otherwise the tap to give relayRequest, after `prepare(head)`. A promise of
 * either when the variant to use is in the directory and its file must be opened first.
 * `owner` is the name's owner: the directory answers only what the same owner stored.
 */
export function beginCache(
  cache: RelayCache, req: IncomingMessage, res: ServerResponse, name: string, owner: string, scheme: 'http' | 'https', tracked: TrackedRequest,
  onHit: (hit: CacheHit) => void, waited = false,
): CacheExchange | undefined | Promise<CacheExchange | undefined> {
  const method = req.method ?? 'GET'
  const target = req.url ?? '/'
  const key = RelayCache.key(name, scheme, target)
  const x = new CacheExchange(cache, req, res, name, owner, key, tracked, scheme, onHit)
  x.waited = waited
  if (method !== 'GET' && method !== 'HEAD') return x.pass('fwd=method', UNSAFE.has(method))
  if (req.headers.range !== undefined) return x.pass('fwd=bypass; detail=range')
  if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0') return x.pass('fwd=bypass; detail=body')

  const personal = req.headers.authorization !== undefined ? 'authorization' : req.headers.cookie !== undefined ? 'cookie' : undefined
  x.personal = personal !== undefined
  let variant: Variant | undefined
  let varyMiss = false
  for (const v of cache.variants(key, owner)) {
    if (v.varyKey === varyKeyOf(v.vary, req.headers)) variant ??= v
    else varyMiss = true
  }
  if (variant && personal && !variant.explicit) return x.pass(`fwd=bypass; detail=${personal}`)
  const miss = (): CacheExchange | Promise<CacheExchange | undefined> => {
    if (method === 'HEAD') return x.pass(varyMiss ? 'fwd=vary-miss' : 'fwd=miss', false, 'misses')
    const inFlight = waited ? undefined : cache.filling(key)
    if (inFlight) {
      // Another request's miss of this URL is at the agent: wait for what it stores.
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, COLLAPSE_WAIT_MS)))
      return Promise.race([inFlight, timeout]).then(() => {
        clearTimeout(timer)
        return res.destroyed ? undefined : beginCache(cache, req, res, name, owner, scheme, tracked, onHit, true)
      })
    }
    return x.fill(varyMiss ? 'fwd=vary-miss' : 'fwd=miss')
  }
  if (!variant) return miss()
  if (variant.body === undefined) {
    const chosen = variant
    return cache.openBody(chosen).then(async (file) => {
      if (!file) return miss()
      if (res.destroyed) {
        void file.close()
        return undefined
      }
      // A small body is checked whole before it is used, and is memory's again.
      if (chosen.bodyBytes <= PRELOAD_BYTES) {
        const body = await file.readAll()
        if (!body) return miss()
        chosen.body = body
        x.fromDisk = true
        const inMemory = cache.promote(chosen, key, name, body) ?? chosen
        return res.destroyed ? undefined : decide(x, inMemory, method, req)
      }
      x.file = file
      res.once('close', () => void file.close())
      return decide(x, chosen, method, req)
    })
  }
  return decide(x, variant, method, req)
}

/** Hit, revalidation or miss for the stored variant that matches the request. */
function decide(x: CacheExchange, variant: Variant, method: string, req: IncomingMessage): CacheExchange | undefined {
  const result = variant.policy.evaluateRequest(x.asked)
  if (result.response && !result.revalidation) {
    x.serve(variant, 'hit', `hit; ttl=${Math.max(0, Math.round(variant.policy.timeToLive() / 1000))}${x.waited ? '; detail=collapsed' : ''}`)
    return undefined
  }
  const why = /no-cache/i.test(`${req.headers['cache-control'] ?? ''} ${req.headers.pragma ?? ''}`) ? 'fwd=request' : 'fwd=stale'
  if (method === 'HEAD') return x.pass(why, false, 'misses')
  // The stored response's own validators, in place of any the client sent (RFC 9111 §4.3.1).
  const stored = variant.policy.responseHeaders()
  const conditional: string[] = []
  if (typeof stored.etag === 'string') conditional.push('if-none-match', stored.etag)
  if (typeof stored['last-modified'] === 'string') conditional.push('if-modified-since', stored['last-modified'])
  if (conditional.length === 0) return x.release().fill(why)
  return x.revalidate(variant, conditional, why)
}

export class CacheExchange implements ResponseTap {
  /** The request as http-cache-semantics sees it: always GET (a HEAD is answered from the GET), Host the tunnel name. */
  readonly asked: CachePolicy.Request
  personal = false
  /** The stored body in the directory, opened for the variant this exchange may serve. */
  file: DiskBody | undefined
  /** The variant's body was read from the directory (counted as a disk hit when served). */
  fromDisk = false
  /** This request waited for another's miss of the same URL. */
  waited = false
  /** Says this exchange's miss is done, to the requests waiting for it. */
  private finishFill: () => void = () => {}
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
    private readonly owner: string,
    private readonly key: string,
    private readonly tracked: TrackedRequest,
    private readonly scheme: 'http' | 'https',
    private readonly onHit: (hit: CacheHit) => void,
  ) {
    this.asked = { url: req.url ?? '/', method: 'GET', headers: { ...req.headers, host: name } }
  }

  /** The directory's body will not be used (the agent's response is). */
  release(): this {
    void this.file?.close()
    this.file = undefined
    return this
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
    if (this.req.method === 'GET') {
      this.finishFill = this.cache.beginFill(this.key)
      // Whatever happens to this response (an agent error, a client gone), the waiters go on.
      this.res.once('close', this.finishFill)
    }
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
    this.release()
    this.count('miss')
    const forwarded = this.mode === 'revalidate' ? `${this.status}; fwd-status=${status}` : this.status
    this.mode = 'fill'
    const policy = this.storable(status, fields, agentAnswer, headers)
    if (policy) this.pending = policy
    else this.finishFill()
    headers.push('cache-status', `${CACHE_NAME}; ${forwarded}${policy ? '; stored' : ''}`)
    return false
  }

  data(chunk: Buffer): void {
    if (!this.pending) return
    this.bytes += chunk.length
    if (this.bytes > this.cache.maxEntryBytes) {
      this.pending = undefined
      this.chunks = []
      this.finishFill()
      return
    }
    this.chunks.push(chunk)
  }

  end(trailers: boolean): void {
    const pending = this.pending
    this.pending = undefined
    if (!pending || trailers) return this.finishFill()
    const body = Buffer.concat(this.chunks, this.bytes)
    this.chunks = []
    this.cache.store(this.key, this.name, this.owner, {
      policy: pending.policy,
      status: pending.status,
      body,
      vary: pending.vary,
      varyKey: varyKeyOf(pending.vary, this.req.headers),
      explicit: pending.explicit,
    }, pending.headerBytes)
    this.finishFill()
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
    let withBody = responseHasBody(req.method, status)
    if (status === 200 && notModified(req.headers, headers)) {
      status = 304
      withBody = false
      delete headers['content-length']
    } else if (responseHasBody('GET', status)) {
      headers['content-length'] = String(variant.bodyBytes)
    }
    const bytes = withBody ? variant.bodyBytes : 0
    const prior = headers['cache-status']
    headers['cache-status'] = prior ? `${String(prior)}, ${CACHE_NAME}; ${cacheStatus}` : `${CACHE_NAME}; ${cacheStatus}`
    this.count(kind)
    if (kind === 'hit' && this.waited) this.cache.counts.collapsed++
    const file = this.file
    this.file = undefined
    if (file || this.fromDisk) this.cache.counts.diskHits++
    try {
      res.writeHead(status, headers)
    } catch {
      void file?.close()
      res.destroy()
      return
    }
    // The agent never saw a hit: tell it, for its inspector (a revalidation went through it).
    if (kind === 'hit') this.notify(status, headers, bytes)
    if (bytes > 0 && variant.body) {
      this.cache.counts.servedBytes += bytes
      res.write(variant.body)
    } else if (bytes > 0 && file) {
      // Streamed from the directory, and kept in memory again when it fits.
      const { key, name, cache } = this
      void file.pipe(res, { max: cache.maxEntryBytes, done: (body) => cache.promote(variant, key, name, body) }).then((whole) => {
        if (whole) cache.counts.servedBytes += bytes
      })
      return
    }
    void file?.close()
    res.end()
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
