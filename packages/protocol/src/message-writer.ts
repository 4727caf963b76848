/**
 * The one encoder of stream messages, as ws has a Sender beside its Receiver: heads, body
 * pieces (DATA), END with trailers, ABORT, CONTINUE, error answers and control messages
 * all leave through a `MessageWriter`. `MessageReader` (message-stream.ts) is the one
 * decoder. Nothing else builds the `[type u8][length u32][payload]` bytes by hand, so a
 * change to the framing is a change to this file and message-codec.ts only.
 *
 * A writer holds only its stream: one small object per request, no Promise, no buffer.
 * Every method writes at once; writes in one tick leave as one yamux frame (the stream
 * corks itself for the tick), so a head and its END cost one frame either way.
 *
 * @example
 * const out = new MessageWriter(stream)
 * out.responseHead({ status: 200, rawHeaders: ['Content-Type', 'text/plain'] })
 * out.data(Buffer.from('hello'))
 * out.end()
 */
import type { Duplex, Readable } from 'node:stream'
import { GwError, type ErrorCode } from './errors.js'
import type { CacheHit, Hello, InternalEndpoints, Notice, Refuse, RequestHead, ResponseHead, TcpHead, Welcome } from './heads.js'
import { encodeJsonMessage, encodeMessageHeader, MessageType } from './message-codec.js'

/** The END of an empty body with no trailers: five constant bytes, shared (never written into). */
const EMPTY_END = encodeMessageHeader(MessageType.END, 0)
const CONTINUE = encodeMessageHeader(MessageType.CONTINUE, 0)

export class MessageWriter {
  readonly stream: Duplex

  constructor(stream: Duplex) {
    this.stream = stream
  }

  /** The request head; a body (`data`… `end`) must follow. False: the stream is full. */
  requestHead(head: RequestHead): boolean {
    return this.stream.write(encodeJsonMessage(MessageType.REQUEST_HEAD, head))
  }

  /**
   * The head of a raw TCP stream (a tcp:// or tls:// endpoint's connection). No body
   * follows: after it the stream carries the connection's bytes both ways, a FIN is a
   * half-close and a reset is a reset.
   */
  tcpHead(head: TcpHead): boolean {
    return this.stream.write(encodeJsonMessage(MessageType.TCP_HEAD, head))
  }

  /** The response head; a body (`data`… `end`) or, after a 101, raw bytes follow. */
  responseHead(head: ResponseHead): boolean {
    return this.stream.write(encodeJsonMessage(MessageType.RESPONSE_HEAD, head))
  }

  /**
   * A request with no body: head, END and the stream's FIN in one write, so one frame
   * (most requests are GETs; bench/README.md, F1).
   */
  requestWithoutBody(head: RequestHead): void {
    this.stream.end(Buffer.concat([encodeJsonMessage(MessageType.REQUEST_HEAD, head), EMPTY_END]))
  }

  /** A response with no body: head, END and FIN together. */
  responseWithoutBody(head: ResponseHead): void {
    this.stream.end(Buffer.concat([encodeJsonMessage(MessageType.RESPONSE_HEAD, head), EMPTY_END]))
  }

  /**
   * A gw error instead of a response (upstream refused, timed out, no such tunnel…): the
   * relay renders the error page and sets `gw-error-code`. Ends the stream. Does nothing
   * when the stream can no longer be written.
   */
  error(code: ErrorCode, message: string, status = 502): void {
    if (!this.stream.writable) return
    this.responseWithoutBody({ status, rawHeaders: [], error: { code, message } })
  }

  /** The agent wants the body of an `Expect: 100-continue` request. */
  continue(): boolean {
    return this.stream.write(CONTINUE)
  }

  /**
   * One piece of a body. Header and payload go as two writes with no copy; the stream
   * makes them one frame. Empty pieces are skipped (an empty DATA carries nothing).
   */
  data(chunk: Buffer): boolean {
    const stream = this.stream
    if (chunk.length === 0) return stream.writableLength < stream.writableHighWaterMark
    stream.cork()
    stream.write(encodeMessageHeader(MessageType.DATA, chunk.length))
    const ok = stream.write(chunk)
    stream.uncork()
    return ok
  }

  /** The body is complete: END with the trailers (raw pairs), then the stream's FIN. */
  end(trailers?: string[]): void {
    this.stream.end(trailers && trailers.length > 0 ? encodeJsonMessage(MessageType.END, trailers) : EMPTY_END)
  }

  /**
   * The body will not complete, and why: ABORT, then FIN. The reader turns it into a
   * GwError with this code. Does nothing when the stream can no longer be written.
   */
  abort(code: ErrorCode, message: string): void {
    if (!this.stream.writable) return
    this.stream.end(encodeJsonMessage(MessageType.ABORT, { code, message }))
  }

  /** The agent's HELLO on the control stream. */
  hello(hello: Hello): boolean {
    return this.stream.write(encodeJsonMessage(MessageType.HELLO, hello))
  }

  /** The relay's WELCOME on the control stream. */
  welcome(welcome: Welcome): boolean {
    return this.stream.write(encodeJsonMessage(MessageType.WELCOME, welcome))
  }

  /** The relay refuses the handshake; the control stream ends after it. */
  refuse(refusal: Refuse): void {
    if (!this.stream.writable) return
    this.stream.end(encodeJsonMessage(MessageType.REFUSE, refusal))
  }

  /** The relay answered a request from its cache (control stream, relay → agent). */
  cacheHit(hit: CacheHit): boolean {
    if (!this.stream.writable) return false
    return this.stream.write(encodeJsonMessage(MessageType.CACHE_HIT, hit))
  }

  /** Internal endpoints (control stream, either way; heads.ts). */
  internalEndpoints(message: InternalEndpoints): boolean {
    if (!this.stream.writable) return false
    return this.stream.write(encodeJsonMessage(MessageType.INTERNAL_ENDPOINTS, message))
  }

  /** Something the relay tells the agent on the control stream (it was replaced…). */
  notice(notice: Notice): boolean {
    if (!this.stream.writable) return false
    return this.stream.write(encodeJsonMessage(MessageType.NOTICE, notice))
  }
}

/**
 * Send `source` as DATA messages through `out`, then END with the trailers `trailers()`
 * gives at that moment, and end the stream. `done` is called once: with no argument when
 * END went out, with the error when the source failed or the stream closed first.
 *
 * Plain listeners, not `stream.pipeline`: in Node 20 a pipeline makes an
 * AbortController per call and a DOMException when it ends, a third of the relay's CPU
 * per request in the benchmark (bench/README.md, F1).
 */
export function sendFramedBody(source: Readable, dest: Duplex | MessageWriter, done: (err?: Error) => void, trailers?: () => string[]): void {
  const out = dest instanceof MessageWriter ? dest : new MessageWriter(dest)
  const stream = out.stream
  let finished = false
  const onData = (chunk: Buffer): void => {
    if (!out.data(chunk)) {
      source.pause()
      stream.once('drain', onDrain)
    }
  }
  const onDrain = (): void => {
    source.resume()
  }
  const onEnd = (): void => {
    out.end(trailers?.())
    finish()
  }
  const onError = (err: Error): void => finish(err)
  const onSourceClose = (): void => {
    if (!source.readableEnded) finish(new GwError('GW_ERR_UPSTREAM_FAILED', 'the body ended before it was complete'))
  }
  const onDestClose = (): void => {
    source.destroy()
    finish(new GwError('GW_ERR_MUX_CLOSED', 'the stream closed before the body was sent'))
  }
  function finish(err?: Error): void {
    if (finished) return
    finished = true
    source.off('data', onData)
    source.off('end', onEnd)
    source.off('error', onError)
    // A source can still fail after this (a client that aborts once the response is
    // sent); nothing here needs to know, but an error with no listener would crash.
    source.on('error', ignoreError)
    source.off('close', onSourceClose)
    stream.off('close', onDestClose)
    stream.off('drain', onDrain)
    done(err)
  }
  source.on('data', onData)
  source.once('end', onEnd)
  source.once('error', onError)
  source.once('close', onSourceClose)
  stream.once('close', onDestClose)
}

function ignoreError(): void {}
