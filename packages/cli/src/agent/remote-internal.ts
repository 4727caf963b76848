/**
 * Internal endpoints of this token's other agents, reached through the relay
 * (relay/internal-endpoints.ts): a forward-internal or http-request to
 * `https://api.internal` that no endpoint of this agent serves goes to the agent that
 * does, when the relay says one is online.
 *
 * The call is an upstream call like any other: an undici-shaped dispatcher (as
 * upstream/http2-client.ts is) opens a stream to the relay, writes the host on a line,
 * then the request head and body as the relay would send them, and reads the other
 * agent's answer as the relay reads an agent's. So retries, the response phase and the
 * streaming of the answer to the client are the pipeline's own code.
 */
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import {
  CodedError, ERROR_CODE_HEADER, GwError, MessageReader, MessageWriter, sendFramedBody,
  type InternalEndpoints, type RequestHead, type Session, type Stream,
} from '@gw/protocol'
import { callUpstream, parseUpstream } from '../upstream/index.js'
import type { EndpointRuntime, RequestOrigin } from './request-context.js'
import type { InternalRequest, InternalResponse } from './internal-request.js'
import { readResponseHead } from './read-response-head.js'

interface Call {
  origin: string
  path: string
  method: string
  headers: string[]
  body: Readable | null
}

interface Handler {
  onConnect?(abort: (err?: Error) => void): void
  onHeaders?(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean
  onData?(chunk: Buffer): boolean
  onComplete?(trailers: string[]): void
  onError?(err: Error): void
}


/** For a call the agent makes itself (http-request), and for checks that send nothing. */
const LOCAL_ORIGIN: RequestOrigin = { remoteAddress: '127.0.0.1', remotePort: 0, scheme: 'https', receivedAt: 0, httpVersion: '1.1' }

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code })
}

export class RemoteInternalEndpoints {
  private hosts = new Set<string>()
  /** tcp and tls ones, as `tcp://camera.internal:22`. */
  private raw = new Set<string>()
  private session: Session | undefined

  constructor(private readonly options: { maxHeadSize: number; responseTimeout: number }) {}

  /** The relay's INTERNAL_ENDPOINTS on the link now in use. */
  update(session: Session, message: InternalEndpoints): void {
    this.session = session
    this.hosts = new Set(message.endpoints.map((e) => e.host))
    this.raw = new Set((message.raw ?? []).map((e) => `${e.proto}://${e.host}`))
  }

  /** The link is gone: until the next one says otherwise, nothing is online. */
  forget(session: Session): void {
    if (this.session !== session) return
    this.session = undefined
    this.hosts = new Set()
    this.raw = new Set()
  }

  has(host: string): boolean {
    return this.session !== undefined && !this.session.closed && this.hosts.has(host)
  }

  /** A tcp or tls internal endpoint (`tcp://camera.internal:22`) another agent of the token serves on the relay now. */
  hasRaw(target: string): boolean {
    return this.session !== undefined && !this.session.closed && this.raw.has(target)
  }

  /**
   * A stream to the relay for a connection to that endpoint, its line written
   * (relay/internal-endpoints.ts); the caller writes the TCP_HEAD and the bytes. Undefined
   * when none is online or the link takes no new stream.
   */
  openRaw(target: string): Stream | undefined {
    const session = this.session
    if (!session || session.closed || !this.raw.has(target)) return undefined
    let stream: Stream
    try {
      stream = session.open()
    } catch {
      return undefined
    }
    stream.write(`${target}\n`)
    return stream
  }

  /**
   * The other agent's internal endpoint as an endpoint of this one: no policy here (the
   * other agent runs its own), its dispatcher the relay stream.
   */
  endpoint(host: string, from: RequestOrigin = LOCAL_ORIGIN): EndpointRuntime | undefined {
    if (!this.has(host)) return undefined
    return {
      name: host,
      publicName: host,
      proto: 'http',
      remotePort: undefined,
      upstream: parseUpstream(`http://${host}`),
      upstreamProtocol: 'http1',
      dispatcher: this.dispatcher(host, from),
      hostHeader: undefined,
      inspect: true,
      policy: undefined,
      remote: { openUpgrade: (method, target, rawHeaders) => this.openUpgrade(host, from, method, target, rawHeaders) },
    }
  }

  /**
   * An upgrade (a WebSocket) to `host`: a relay stream with the host line and the head,
   * as the relay writes an upgrade to an agent (relay-upgrade.ts): no END, the client's
   * bytes follow raw once the other agent answers 101. Throws a coded error when the host
   * is offline or the relay takes no new stream.
   */
  private openUpgrade(host: string, from: RequestOrigin, method: string, target: string, rawHeaders: string[]): Stream {
    const session = this.session
    if (!session || session.closed || !this.hosts.has(host)) throw new GwError('GW_ERR_INTERNAL_ENDPOINT_OFFLINE', `no agent of this authtoken serves ${host} on the relay now`)
    let stream: Stream
    try {
      stream = session.open()
    } catch (err) {
      throw new GwError('GW_ERR_RELAY_OVERLOADED', `cannot open a stream to the relay for ${host}: ${(err as Error).message}`)
    }
    stream.write(`${host}\n`)
    new MessageWriter(stream).requestHead({ ...from, method, target, rawHeaders, tunnel: host, upgrade: true, expectContinue: false, hasBody: false })
    return stream
  }

  /** http-request to another agent's internal endpoint: the whole answer, at most `maxBody` bytes. */
  async request(host: string, request: InternalRequest, hops: number, maxBody: number, signal: AbortSignal): Promise<InternalResponse> {
    const from: RequestOrigin = { ...LOCAL_ORIGIN, remoteAddress: request.clientIp, receivedAt: Date.now(), hops }
    const call = callUpstream(this.dispatcher(host, from), {
      origin: `http://${host}`, path: request.target, method: request.method, headers: request.rawHeaders,
      body: request.body.length > 0 ? Readable.from([request.body]) : null,
    })
    const onAbort = (): void => call.abort(new CodedError('GW_ERR_UPSTREAM_TIMEOUT', 504, 'the internal request timed out'))
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      const answer = await call.answer
      const chunks: Buffer[] = []
      let size = 0
      await new Promise<void>((resolve, reject) => {
        answer.streamTo({
          data(chunk) {
            size += chunk.length
            if (size > maxBody) {
              answer.abort(new CodedError('GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE', 502, `response size exceeded: the body is over ${maxBody} bytes`))
              return false
            }
            chunks.push(chunk)
            return true
          },
          end: () => resolve(),
          error: reject,
        })
      })
      return { status: answer.status, rawHeaders: answer.rawHeaders, body: Buffer.concat(chunks, size) }
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  private dispatcher(host: string, from: RequestOrigin): Dispatcher {
    return { dispatch: (call: Call, handler: Handler) => this.dispatch(host, from, call, handler) } as unknown as Dispatcher
  }

  private dispatch(host: string, from: RequestOrigin, call: Call, handler: Handler): boolean {
    let done = false
    let stream: Stream | undefined
    let headTimer: NodeJS.Timeout | undefined
    const fail = (err: Error): void => {
      if (done) return
      done = true
      clearTimeout(headTimer)
      stream?.destroy()
      call.body?.destroy()
      handler.onError?.(err)
    }
    handler.onConnect?.((err) => fail(err ?? coded('UND_ERR_ABORTED', 'the request was aborted')))
    if (done) return true
    const session = this.session
    if (!session || session.closed || !this.hosts.has(host)) {
      fail(new GwError('GW_ERR_INTERNAL_ENDPOINT_OFFLINE', `no agent of this authtoken serves ${host} on the relay now`))
      return true
    }
    try {
      stream = session.open()
    } catch (err) {
      fail(new GwError('GW_ERR_RELAY_OVERLOADED', `cannot open a stream to the relay for ${host}: ${(err as Error).message}`))
      return true
    }
    const s = stream
    s.on('error', fail)
    s.once('close', () => fail(coded('UND_ERR_SOCKET', `the relay closed the stream to ${host} before the answer was complete`)))
    const head: RequestHead = {
      ...from,
      method: call.method,
      target: call.path,
      rawHeaders: call.headers,
      tunnel: host,
      upgrade: false,
      expectContinue: false,
      hasBody: call.body !== null,
    }
    s.write(`${host}\n`)
    const out = new MessageWriter(s)
    if (call.body === null) out.requestWithoutBody(head)
    else {
      out.requestHead(head)
      sendFramedBody(call.body, out, (err) => {
        if (err) fail(err)
      })
    }
    headTimer = setTimeout(() => fail(coded('UND_ERR_HEADERS_TIMEOUT', `${host} did not send response headers in time`)), this.options.responseTimeout)
    const reader = new MessageReader(s, { maxMessageSize: this.options.maxHeadSize })
    readResponseHead(reader, () => coded('UND_ERR_SOCKET', `${host} ended the stream without a response`), (err, response) => {
      clearTimeout(headTimer)
      if (done) return
      if (err) return fail(err)
      // The other agent's (or the relay's) error keeps its code: the client sees what went wrong there.
      if (response.error) return fail(new CodedError(response.error.code, response.status, response.error.message))
      const raw: Buffer[] = response.rawHeaders.map((h) => Buffer.from(h, 'latin1'))
      // The other agent's own answer (a deny, a loop cut) names its code in the head, as to the relay; the pipeline keeps it (pipeline.ts, remoteErrorCode).
      if (response.errorCode) raw.push(Buffer.from(ERROR_CODE_HEADER), Buffer.from(response.errorCode))
      const control = reader.bodyTo({
        data: (chunk) => handler.onData?.(chunk) !== false,
        end: (trailers) => {
          if (done) return
          done = true
          s.destroy()
          handler.onComplete?.(trailers)
        },
        error: fail,
      })
      let flowing: boolean
      try {
        flowing = handler.onHeaders?.(response.status, raw, () => control.resume(), response.statusMessage ?? '') ?? true
      } catch (e) {
        return fail(e as Error)
      }
      if (flowing) control.resume()
    })
    return true
  }
}
