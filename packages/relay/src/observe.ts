/**
 * What the relay tells its operators: one event per admitted agent, per refused
 * handshake, per finished request. Metrics (`metrics.ts`) and the access log
 * (`access-log.ts`) listen here; neither reaches into the routing code.
 *
 * Emitting with no listener costs an array length check, so the request path stays
 * cheap with metrics and logs off.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import { ERROR_CODE_HEADER } from '@gw/protocol'

/**
 * A short, non-secret id for the token an agent used: the first 8 hex digits of the
 * token's SHA-256 (what `sha256:<hex>` in a tokens file starts with). `anonymous` on a
 * relay without tokens. Bounded by the number of configured tokens, so it is a safe label.
 */
export function tokenIdOf(owner: string): string {
  if (owner.startsWith('token:')) return owner.slice(6, 14)
  return owner ? 'anonymous' : ''
}

export interface AgentEvent {
  remote: string
  token: string
  names: string[]
  /** The agent's tcp endpoints' ports. */
  ports?: number[]
}

export interface HandshakeFailure {
  remote: string
  code: string
}

/** One finished HTTP request, as the access log writes it. */
export interface RequestRecord {
  /** Epoch ms when the relay had the request head. */
  start: number
  /** The id the agent's inspector shows for the same request. */
  id: string
  /** The tunnel name, or undefined for the relay's own host. */
  name: string | undefined
  /** Short token id of the agent that served it (see tokenIdOf). */
  token: string | undefined
  method: string
  /** The path only: the query is left out, it may carry secrets. */
  path: string
  /** 0 when no response head was sent (the client or the agent went away first). */
  status: number
  /** Bytes read from and written to the client's connection for this request, heads included. */
  bytesIn: number
  bytesOut: number
  durationMs: number
  remote: string
  scheme: 'http' | 'https'
  /** The `gw-error-code` the client got, if any. */
  errorCode: string | undefined
  /** What the relay's cache did (hit, revalidated, miss, bypass), for endpoints with --relay-cache. */
  cache?: CacheResult
}

export type CacheResult = 'hit' | 'revalidated' | 'miss' | 'bypass'

/**
 * ACME events, emitted by the certificate manager for each order's outcome: `event` is
 * `order`, `renewal` or `rate_limited`; `result` is `ok` or `error`; `detail` the challenge
 * or the error code (not a label). Metrics count them (`gw_relay_acme_events_total`).
 */
export interface AcmeEvent {
  event: string
  result: 'ok' | 'error'
  detail?: string
}

export interface ReloadEvent {
  result: 'ok' | 'error'
  source: string
  error?: string
}

/** One connection to a tcp or tls endpoint, when it closed (or was refused at once). */
export interface TcpRecord {
  proto: 'tcp' | 'tls'
  /** The token id of the agent that served it; `none` when no agent took it. */
  token: string
  /** ok: ended cleanly; reset: either side reset it (or the idle timeout cut it); refused: no agent, or the connection limit. */
  result: 'ok' | 'reset' | 'refused'
  /** Bytes from the client, and to it. */
  bytesIn: number
  bytesOut: number
  durationMs: number
}

export interface RelayEventMap {
  'agent:connected': AgentEvent
  'agent:disconnected': AgentEvent
  'handshake:failed': HandshakeFailure
  'request:end': RequestRecord
  'tcp:end': TcpRecord
  'limit:hit': { token: string; limit: string }
  'config:reload': ReloadEvent
  acme: AcmeEvent
}

type Listener<T> = (event: T) => void

/** A typed, synchronous fan-out. A listener that throws is logged by the caller's try, never the request path. */
export class RelayEvents {
  private readonly listeners: { [K in keyof RelayEventMap]?: Array<Listener<RelayEventMap[K]>> } = {}

  on<K extends keyof RelayEventMap>(type: K, listener: Listener<RelayEventMap[K]>): () => void {
    const list = (this.listeners[type] ??= []) as Array<Listener<RelayEventMap[K]>>
    list.push(listener)
    return () => {
      const i = list.indexOf(listener)
      if (i !== -1) list.splice(i, 1)
    }
  }

  has(type: keyof RelayEventMap): boolean {
    return (this.listeners[type]?.length ?? 0) > 0
  }

  emit<K extends keyof RelayEventMap>(type: K, event: RelayEventMap[K]): void {
    const list = this.listeners[type] as Array<Listener<RelayEventMap[K]>> | undefined
    if (!list) return
    for (const listener of [...list]) {
      try {
        listener(event)
      } catch {
        // An observer's fault never reaches a client.
      }
    }
  }
}

/** Per-connection counters at the end of the last request on it, so keep-alive requests each get their own bytes. */
interface SocketMark {
  read: number
  written: number
}

/** Request ids: `req_` + 8 random hex digits per relay process + a base-36 sequence, the agent's own id shape. */
export function requestIdSource(): () => string {
  const prefix = randomBytes(4).toString('hex')
  let sequence = 0
  return () => `req_${prefix}${(++sequence).toString(36).padStart(6, '0')}`
}

/** A request the relay is serving: routing fills in `name` and `token`. */
export interface TrackedRequest {
  readonly id: string
  name: string | undefined
  token: string | undefined
  cache?: CacheResult
}

export class RequestTracker {
  private readonly marks = new WeakMap<object, SocketMark>()
  readonly nextId = requestIdSource()

  constructor(private readonly events: RelayEvents) {}

  begin(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', remote: string): TrackedRequest {
    const tracked: TrackedRequest = { id: this.nextId(), name: undefined, token: undefined }
    if (!this.events.has('request:end')) return tracked
    const start = performance.timeOrigin + performance.now()
    const socket = req.socket
    let errorCode: string | undefined
    // writeHead with a header list does not keep the headers on the response, so the
    // code is taken on the way out: every path (relay pages, agent responses) goes here.
    const writeHead = res.writeHead as (...args: unknown[]) => ServerResponse
    res.writeHead = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
      errorCode = findErrorCode(args[1]) ?? findErrorCode(args[2])
      return writeHead.apply(this, args)
    } as typeof res.writeHead
    res.once('close', () => {
      let bytesIn = 0
      let bytesOut = 0
      if (socket) {
        const mark = this.marks.get(socket) ?? { read: 0, written: 0 }
        bytesIn = socket.bytesRead - mark.read
        bytesOut = socket.bytesWritten - mark.written
        this.marks.set(socket, { read: socket.bytesRead, written: socket.bytesWritten })
      }
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      this.events.emit('request:end', {
        start,
        id: tracked.id,
        name: tracked.name,
        token: tracked.token,
        method: req.method ?? '',
        path: q === -1 ? url : url.slice(0, q),
        status: res.headersSent ? res.statusCode : 0,
        bytesIn,
        bytesOut,
        durationMs: performance.timeOrigin + performance.now() - start,
        remote,
        scheme,
        // An HTTP/2 response's head is set with setHeader (h2-edge.ts), not writeHead's list.
        errorCode: errorCode ?? headerCode(res),
        ...(tracked.cache ? { cache: tracked.cache } : {}),
      })
    })
    return tracked
  }
}

function headerCode(res: ServerResponse): string | undefined {
  try {
    const value = res.getHeader(ERROR_CODE_HEADER)
    return value === undefined ? undefined : String(value)
  } catch {
    return undefined
  }
}

function findErrorCode(headers: unknown): string | undefined {
  if (!headers || typeof headers !== 'object') return undefined
  if (Array.isArray(headers)) {
    // A flat [name, value, …] list, or [[name, value], …].
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as unknown[][]) {
        if (String(pair[0]).toLowerCase() === ERROR_CODE_HEADER) return String(pair[1])
      }
      return undefined
    }
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === ERROR_CODE_HEADER) return String(headers[i + 1])
    }
    return undefined
  }
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (name.toLowerCase() === ERROR_CODE_HEADER) return String(value)
  }
  return undefined
}
