/**
 * One request's state, made once when its head arrives and handed to every step of the
 * pipeline (pipeline.ts): the stream and its reader, the head, the endpoint, the
 * agent's shared runtime, the recorder (when recording is on) and the response writer.
 * Steps take the context rather than five positional parameters, and no step keeps
 * state of its own about the request.
 */
import { Readable, type Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import { GwError, getRawHeader, HOP_BY_HOP, type BodyReadable, type EndpointProto, type MessageReader, type RequestHead, type Stream, type TerminateTlsRequest } from '@gw/protocol'
import type { CompiledPolicy, InternalAnswer, InternalCall } from '../policy/index.js'
import type { Upstream, UpstreamProtocol, UpstreamRequest } from '../upstream/index.js'
import type { AgentEvents } from './events.js'
import type { Recorder } from './recorder.js'
import { ResponseWriter, type ErrorReport } from './response-writer.js'

export interface EndpointRuntime {
  /** Agent-side name (`command_line`, or the config file's name). */
  name: string
  publicName: string
  /** http: requests; tcp and tls: raw connections (agent/tcp-forward.ts). */
  proto: EndpointProto
  /** A tcp endpoint's public port: asked for, or given by the relay and asked for again on reconnect. */
  remotePort: number | undefined
  /** The relay's first public URL for it (set at each welcome); `endpoint.url` in on_tcp_connect. */
  publicUrl?: string
  upstream: Upstream
  /** What the agent speaks to the upstream (`--upstream-protocol`). */
  upstreamProtocol: UpstreamProtocol
  /** The dispatcher for that protocol: the runtime's, or its HTTP/2 one. */
  dispatcher: Dispatcher
  /** `rewrite` sets Host to the upstream's; any other value replaces Host with it. */
  hostHeader: string | undefined
  inspect: boolean
  /** The endpoint's traffic policy; undefined (or empty) runs the pipeline's fast path. */
  policy: CompiledPolicy | undefined
  /**
   * An https endpoint's terminate-tls, which the relay runs (its policy's on_tcp_connect):
   * the agent asks for it in the hello and refuses any request whose head does not say it
   * came through it (`tls.terminateTls`, this digest).
   */
  terminateTls?: { request: TerminateTlsRequest; digest: string }
  /**
   * Another agent's internal endpoint, reached through the relay (remote-internal.ts):
   * `openUpgrade` starts an upgrade (a WebSocket) to it, the host line and the head written
   * on a new relay stream, whose answer comes back as the relay would read an agent's.
   */
  remote?: { openUpgrade(method: string, target: string, rawHeaders: string[]): Stream }
}

/** The request fields another agent's internal endpoint sees that an upstream call does not carry: who the client is (remote-internal.ts). */
export type RequestOrigin = Pick<RequestHead, 'remoteAddress' | 'remotePort' | 'scheme' | 'receivedAt' | 'httpVersion'> & Partial<Pick<RequestHead, 'tls' | 'hops'>>

/** What every request shares: made once per agent. */
export interface AgentRuntime {
  dispatcher: Dispatcher
  events: AgentEvents
  /** Make an Exchange record per request (the inspector, the TUI and the log lines read them). */
  record: boolean
  maxHeadSize: number
  responseTimeout: number
  tlsVerify: boolean
  endpoint(publicName: string): EndpointRuntime | undefined
  /**
   * An internal endpoint (`api.internal`, `api.internal:8080`) for forward-internal: this
   * agent's, or another agent's of the token through the relay (remote-internal.ts),
   * which sees `from` as the request's origin.
   */
  internalEndpoint?: (host: string, from?: RequestOrigin) => EndpointRuntime | undefined
  /** A tcp or tls internal endpoint of this agent, by its URL (`tcp://camera.internal:22`, `tls://db.internal:443`). */
  rawInternalEndpoint?: (target: string) => EndpointRuntime | undefined
  /** Another agent's tcp or tls internal endpoint is online on the relay. */
  hasRemoteRawInternal?: (target: string) => boolean
  /** A relay stream for a connection to another agent's one, its first line written (remote-internal.ts); undefined when offline. */
  openRemoteRawInternal?: (target: string) => Duplex | undefined
  /** Send a request to an internal endpoint through its pipeline (internal-request.ts); `hops` counts the agent's own requests in the chain. */
  internalRequest?: (host: string, req: InternalCall & { clientIp: string }, hops: number, maxBody: number, signal: AbortSignal) => Promise<InternalAnswer>
  nextId(): string
}

/** Headers the agent sets or frames itself; the client's copies never reach the upstream. */
const AGENT_SET = new Set(['expect'])

export class RequestContext {
  readonly stream: Duplex
  readonly reader: MessageReader
  readonly head: RequestHead
  /** The endpoint serving the request; a forward-internal moves it to the internal endpoint. */
  endpoint: EndpointRuntime
  readonly runtime: AgentRuntime
  readonly recorder: Recorder | undefined
  readonly writer: ResponseWriter
  /** The normalised path and query (request-target.ts); what the policy and the upstream see. */
  target: string
  /** The Host the request was routed by. */
  readonly host: string
  /** The upstream call in flight, aborted if the client goes away before its head. */
  call: UpstreamRequest | { abort(err: Error): void } | undefined
  /** Tells a pool how the request it picked a target for ended (pool.release). */
  release: ((ok: boolean) => void) | undefined
  /** CONTINUE was sent, or it is decided that it never will be. */
  private continued = false
  private body: BodyReadable | undefined

  constructor(stream: Duplex, reader: MessageReader, head: RequestHead, endpoint: EndpointRuntime, runtime: AgentRuntime, recorder: Recorder | undefined, onFinish?: (error: ErrorReport | undefined) => void) {
    this.stream = stream
    this.reader = reader
    this.head = head
    this.endpoint = endpoint
    this.runtime = runtime
    this.recorder = recorder
    this.target = head.target
    this.host = getRawHeader(head.rawHeaders, 'host') ?? ''
    this.writer = new ResponseWriter(stream, recorder, getRawHeader(head.rawHeaders, 'accept'), (error) => {
      const release = this.release
      this.release = undefined
      release?.(error === undefined)
      onFinish?.(error)
    }, head.method)
    stream.once('close', this.onClose)
  }

  /**
   * The stream becomes raw bytes (an upgrade's 101): its close is the connection's
   * normal end, not a client that went away. Returns the bytes read past the head.
   */
  detach(): Buffer {
    this.stream.off('close', this.onClose)
    return this.reader.detach()
  }

  private readonly onClose = (): void => {
    // Every stream closes; only one closed before its response was over is a client that
    // went away (and only then is an Error worth its stack trace).
    if (this.writer.done) return
    this.call?.abort(new GwError('GW_ERR_UPSTREAM_FAILED', 'the client went away'))
    this.writer.clientGone()
  }

  /**
   * The request body as a Readable, or null when the request has none. `Expect:
   * 100-continue` is answered the first time something reads it, so a request the
   * request phase refuses never gets a 100 and the client never uploads its body.
   */
  requestBody(): BodyReadable | null {
    if (!this.head.hasBody || this.head.upgrade) return null
    if (this.body) return this.body
    const { recorder } = this
    let control: ReturnType<MessageReader['bodyTo']> | undefined
    const body = new Readable({
      read: () => {
        if (this.head.expectContinue && !this.continued) {
          this.continued = true
          this.writer.continue()
        }
        control?.resume()
      },
      destroy: (err, cb) => {
        control?.cancel()
        cb(err)
      },
    }) as BodyReadable
    body.trailers = []
    // A body can fail with nobody reading it (a policy answered first, the link died):
    // the stream reports that, so it must not become an uncaught error.
    body.on('error', noop)
    control = this.reader.bodyTo({
      data: (chunk) => {
        recorder?.requestBody(chunk)
        return body.push(chunk)
      },
      end: (trailers) => {
        body.trailers = trailers
        body.push(null)
      },
      error: (err) => body.destroy(err),
    })
    this.body = body
    return body
  }

  /**
   * The request was answered without its body. A body the client is already sending is
   * read to its end, so its request completes and the stream is freed; a body still
   * waiting for `100 Continue` is never asked for (the relay drops it).
   */
  discardBody(body: Readable | null): void {
    if (this.head.upgrade) {
      // After an upgrade's head the client's bytes are raw: drop them.
      this.reader.detach()
      this.stream.resume()
      return
    }
    // Decided now: no 100 for this request, so the relay drops a body still held back.
    this.continued = true
    if (body) body.resume()
    else if (this.head.hasBody && !this.body) this.reader.bodyTo(DISCARD).resume()
  }

  /** The request headers for the upstream: hop-by-hop and agent-set ones dropped, Host as configured. */
  upstreamHeaders(rawHeaders: string[]): string[] {
    const headers = cleanRequestHeaders(rawHeaders)
    const { hostHeader } = this.endpoint
    if (hostHeader) {
      const host = hostHeader === 'rewrite' ? this.endpoint.upstream.url.host : hostHeader
      for (let i = 0; i < headers.length; i += 2) {
        if (headers[i]!.toLowerCase() === 'host') headers[i + 1] = host
      }
    }
    return headers
  }

  /**
   * The headers for a call (not an upgrade). Over HTTP/2 they say `te: trailers`: the
   * agent takes trailers and carries them to the client, and gRPC servers ask for it.
   */
  callHeaders(rawHeaders: string[]): string[] {
    const headers = this.upstreamHeaders(rawHeaders)
    if (this.endpoint.upstreamProtocol === 'http2') headers.push('te', 'trailers')
    return headers
  }
}

const DISCARD = { data: () => true, end: noop, error: noop }

/** Drop hop-by-hop headers (and those Connection names) and the ones the agent sets; one pass. */
function cleanRequestHeaders(rawHeaders: string[]): string[] {
  let named: Set<string> | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toLowerCase() === 'connection') {
      named ??= new Set()
      for (const token of rawHeaders[i + 1]!.split(',')) named.add(token.trim().toLowerCase())
    }
  }
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase()
    if (HOP_BY_HOP.has(name) || AGENT_SET.has(name) || named?.has(name)) continue
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!)
  }
  return out
}

function noop(): void {}
