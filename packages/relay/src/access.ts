/**
 * Who may connect, what each token may hold, and how much it may use: the relay's
 * tokens with their reserved names and TCP ports, and the per-token limits (tunnels,
 * concurrent streams, requests per second, bandwidth). A config reload swaps the token
 * entries in place; counters of tokens that stay are kept.
 *
 * Tokens stay SHA-256 digests compared in constant time (authtokens.ts); the owner of a
 * link is `token:<hex digest>`, as in the name registry.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { HandshakeError, type ErrorCode } from '@gw/protocol'
import { createTokenStore, type TokenStore } from './authtokens.js'

export interface TokenLimits {
  /** Endpoints (tunnels) the token's agents may hold at once. */
  tunnels?: number
  /** Requests in flight at once through the token's agents; then 503 GW_ERR_STREAM_LIMIT. */
  streams?: number
  /** Requests per second (burst: one second's worth); then 429 GW_ERR_RATE_LIMITED with Retry-After. */
  rps?: number
  /** Bytes per second of responses from the token's agents to clients; past it the relay reads the agents' streams no faster. */
  bandwidth?: number
  /** Bytes of a request's head (request line and headers) through the token's agents; then 431 GW_ERR_HEADERS_TOO_LARGE. At most the relay's max_header_size, which Node enforces while parsing. */
  headerSize?: number
  /** Bytes of a request's body through the token's agents; then 413 GW_ERR_BODY_TOO_LARGE, before the stream opens when Content-Length says so, else when the count passes it. */
  bodySize?: number
}

export interface TokenEntry {
  /** A label for logs and config errors; not secret, not a metric label. */
  label: string
  digest: Buffer
  /** Names only this token may hold. */
  names: string[]
  /** TCP ports only this token may hold (for TCP tunnels). */
  tcpPorts: number[]
  limits: TokenLimits
}

export interface Refusal {
  code: ErrorCode
  detail: string
  retryAfter?: number
}

export type RequestGate = { ok: true; release: () => void } | ({ ok: false } & Refusal)

interface Bucket {
  tokens: number
  at: number
}

const now = (): number => performance.now()

export class AccessControl {
  private flagDigests: Buffer[]
  private entries = new Map<string, TokenEntry>()
  private reserved = new Map<string, string>()
  private reservedPorts = new Map<number, string>()
  private store: TokenStore
  private readonly inFlight = new Map<string, number>()
  private readonly buckets = new Map<string, Bucket>()
  private readonly bandwidth = new Map<string, Bucket>()
  private defaults: TokenLimits

  /** Fixed at start: a relay with no tokens at all is anonymous, and a reload does not change that. */
  readonly anonymous: boolean

  constructor(flagTokens: string[], flagDigests: Buffer[], entries: TokenEntry[], defaults: TokenLimits = {}) {
    this.flagDigests = [...createTokenStore(flagTokens).digests(), ...flagDigests]
    this.defaults = defaults
    this.store = this.build(entries)
    this.anonymous = this.store.size === 0
  }

  private build(entries: TokenEntry[]): TokenStore {
    const map = new Map<string, TokenEntry>()
    const reserved = new Map<string, string>()
    const reservedPorts = new Map<number, string>()
    for (const entry of entries) {
      const owner = `token:${entry.digest.toString('hex')}`
      map.set(owner, entry)
      for (const name of entry.names) reserved.set(name, owner)
      for (const port of entry.tcpPorts) reservedPorts.set(port, owner)
    }
    this.entries = map
    this.reserved = reserved
    this.reservedPorts = reservedPorts
    return createTokenStore([], [...this.flagDigests, ...entries.map((e) => e.digest)])
  }

  /** Swap in the token entries and default limits of a new config; then `isValid` tells whose agents to disconnect. */
  replace(entries: TokenEntry[], defaults: TokenLimits = {}): void {
    this.defaults = defaults
    this.store = this.build(entries)
  }

  get size(): number {
    return this.store.size
  }

  /** The digest of a valid token, or undefined. Constant time over every entry. */
  verify(token: string): Buffer | undefined {
    return this.store.verify(token)
  }

  /** Whether an owner (`token:<hex>`) still has a valid token; anonymous owners always do. */
  isValid(owner: string): boolean {
    if (!owner.startsWith('token:')) return true
    return this.store.hasDigest(Buffer.from(owner.slice(6), 'hex'))
  }

  labelOf(owner: string): string | undefined {
    return this.entries.get(owner)?.label
  }

  limitsOf(owner: string): TokenLimits {
    if (!owner.startsWith('token:')) return {}
    return { ...this.defaults, ...this.entries.get(owner)?.limits }
  }

  /** Refuses a name reserved for another token. */
  checkName(name: string, owner: string): void {
    const holder = this.reserved.get(name)
    if (holder !== undefined && holder !== owner) {
      throw new HandshakeError('GW_ERR_NAME_TAKEN', `the name "${name}" is reserved for another authtoken on this relay; pick another name`)
    }
  }

  /** The token a TCP port is reserved for in the config, if any. */
  tcpPortHolder(port: number): string | undefined {
    return this.reservedPorts.get(port)
  }

  /** Refuses a TCP port reserved for another token. */
  checkTcpPort(port: number, owner: string): void {
    const holder = this.reservedPorts.get(port)
    if (holder !== undefined && holder !== owner) {
      throw new HandshakeError('GW_ERR_TCP_PORT_TAKEN', `TCP port ${port} is reserved for another authtoken on this relay; leave the port out for a free one`)
    }
  }

  /** Refuses a handshake that would take the token past its tunnels limit. */
  checkTunnels(owner: string, held: number, asked: number): void {
    const limit = this.limitsOf(owner).tunnels
    if (limit !== undefined && held + asked > limit) {
      throw new HandshakeError(
        'GW_ERR_TUNNEL_LIMIT',
        `this authtoken may hold ${limit} tunnel(s) at once and already holds ${held}; stop one, or ask the relay operator to raise its tunnels limit`,
      )
    }
  }

  /** In a cluster: counts a token's rps across every relay (cluster/rate-limit.ts). */
  globalRate: { check(owner: string, rps: number): Promise<'admit' | 'refuse' | 'local'> } | undefined

  /**
   * Admit one request for `owner`, or say which limit refuses it. In a cluster, a token
   * with an rps limit is counted in Redis (a promise); when Redis cannot be asked, here.
   */
  admitRequest(owner: string): RequestGate | Promise<RequestGate> {
    const rps = this.limitsOf(owner).rps
    if (!this.globalRate || rps === undefined) return this.startRequest(owner)
    return this.globalRate.check(owner, rps).then((verdict): RequestGate => {
      if (verdict === 'local') return this.startRequest(owner)
      if (verdict === 'refuse') {
        return { ok: false, code: 'GW_ERR_RATE_LIMITED', detail: `this tunnel's authtoken may make ${rps} request(s) per second across the relays of this cluster; retry after 1 s`, retryAfter: 1 }
      }
      return this.startStream(owner)
    })
  }

  /** Admit one request for `owner` by this relay's own counts, or say which limit refuses it. */
  startRequest(owner: string): RequestGate {
    const limits = this.limitsOf(owner)
    if (limits.rps !== undefined) {
      const t = now()
      const bucket = this.buckets.get(owner) ?? { tokens: limits.rps, at: t }
      bucket.tokens = Math.min(limits.rps, bucket.tokens + ((t - bucket.at) / 1000) * limits.rps)
      bucket.at = t
      this.buckets.set(owner, bucket)
      if (bucket.tokens < 1) {
        const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / limits.rps))
        return { ok: false, code: 'GW_ERR_RATE_LIMITED', detail: `this tunnel's authtoken may make ${limits.rps} request(s) per second; retry after ${retryAfter} s`, retryAfter }
      }
      bucket.tokens -= 1
    }
    return this.startStream(owner)
  }

  /** The token's streams limit alone. */
  private startStream(owner: string): RequestGate {
    const limits = this.limitsOf(owner)
    const open = this.inFlight.get(owner) ?? 0
    if (limits.streams !== undefined && open >= limits.streams) {
      return { ok: false, code: 'GW_ERR_STREAM_LIMIT', detail: `this tunnel's authtoken may have ${limits.streams} request(s) in flight at once; retry when one finishes` }
    }
    this.inFlight.set(owner, open + 1)
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        const n = (this.inFlight.get(owner) ?? 1) - 1
        if (n <= 0) this.inFlight.delete(owner)
        else this.inFlight.set(owner, n)
      },
    }
  }

  /** Refuses a request head past the token's header size limit (the body limit is enforced as the body flows). */
  checkHead(owner: string, req: IncomingMessage): Refusal | undefined {
    const limit = this.limitsOf(owner).headerSize
    if (limit === undefined) return undefined
    const size = headSize(req)
    if (size <= limit) return undefined
    return { code: 'GW_ERR_HEADERS_TOO_LARGE', detail: `the request head is ${size} bytes and this tunnel's authtoken allows ${limit}; send smaller headers (cookies!)` }
  }

  /**
   * Hold a response to its token's bandwidth. Writes past the token's bucket wait in a
   * queue and go out as the bucket refills; meanwhile write() returns false, so the relay
   * stops reading the agent's stream and its window closes: what waits here is at most
   * one stream window, and the agent slows down. The bucket is the token's, shared by
   * all its responses, and holds one second's worth. `end()` waits for the queue.
   */
  throttleResponse(owner: string, res: ServerResponse): void {
    if (this.limitsOf(owner).bandwidth === undefined) return
    const write = res.write.bind(res) as (...args: unknown[]) => boolean
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse
    const queue: unknown[][] = []
    let ending: unknown[] | undefined
    let timer: NodeJS.Timeout | undefined
    const pump = (): void => {
      timer = undefined
      if (res.destroyed) return void (queue.length = 0)
      while (queue.length > 0) {
        const wait = this.debt(owner)
        if (wait > 0) {
          timer = setTimeout(pump, wait)
          return
        }
        const args = queue.shift()!
        this.spend(owner, byteLength(args[0]))
        write(...args)
      }
      if (ending) end(...ending)
      else res.emit('drain')
    }
    res.write = ((...args: unknown[]): boolean => {
      if (queue.length === 0 && this.debt(owner) === 0) {
        this.spend(owner, byteLength(args[0]))
        return write(...args)
      }
      queue.push(args)
      timer ??= setTimeout(pump, this.debt(owner))
      return false
    }) as typeof res.write
    res.end = ((...args: unknown[]): ServerResponse => {
      if (queue.length === 0) return end(...args)
      ending = args
      return res
    }) as typeof res.end
    res.once('close', () => clearTimeout(timer))
  }

  /** Take `bytes` from the token's bandwidth bucket (it may go into debt). */
  private spend(owner: string, bytes: number): void {
    const bucket = this.refill(owner)
    if (bucket) bucket.tokens -= bytes
  }

  /** Ms until the token's bandwidth bucket is out of debt; 0 when it is not in debt. */
  private debt(owner: string): number {
    const bucket = this.refill(owner)
    if (!bucket || bucket.tokens >= 0) return 0
    return Math.ceil((-bucket.tokens / this.limitsOf(owner).bandwidth!) * 1000)
  }

  private refill(owner: string): Bucket | undefined {
    const rate = this.limitsOf(owner).bandwidth
    if (rate === undefined) return undefined
    const t = now()
    const bucket = this.bandwidth.get(owner) ?? { tokens: rate, at: t }
    bucket.tokens = Math.min(rate, bucket.tokens + ((t - bucket.at) / 1000) * rate)
    bucket.at = t
    this.bandwidth.set(owner, bucket)
    return bucket
  }

  close(): void {
    this.bandwidth.clear()
  }
}

/** The request line and headers as they arrived: method SP target SP version CRLF, name: value CRLF each, CRLF. */
function headSize(req: IncomingMessage): number {
  let size = Buffer.byteLength(req.method ?? '') + Buffer.byteLength(req.url ?? '') + 13
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) size += Buffer.byteLength(raw[i]!, 'latin1') + Buffer.byteLength(raw[i + 1]!, 'latin1') + 4
  return size + 2
}

function byteLength(chunk: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk)
  return chunk instanceof Uint8Array ? chunk.byteLength : 0
}
