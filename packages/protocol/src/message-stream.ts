/**
 * Reading messages on a stream (a yamux stream in practice; any Duplex works): the one
 * decoder, as `MessageWriter` (message-writer.ts) is the one encoder.
 *
 * The reader hands out heads one at a time with `next()`. After each head it pauses,
 * because only the caller knows what follows: a framed body (`body()`) or, after an
 * upgrade, raw bytes (`detach()`).
 */
import { Readable, type Duplex } from 'node:stream'
import { GwError, isErrorCode } from './errors.js'
import {
  decodeJson,
  encodeJsonMessage,
  encodeMessageHeader,
  MessageDecoder,
  MessageType,
  type DecodedMessage,
  type MessageTypeValue,
} from './message-codec.js'

const HEAD_TYPES = new Set<number>([MessageType.REQUEST_HEAD, MessageType.RESPONSE_HEAD, MessageType.TCP_HEAD])

export interface MessageReaderOptions {
  maxMessageSize?: number
}

/** A body as a Readable; `trailers` is filled when END arrives, before 'end'. */
export interface BodyReadable extends Readable {
  trailers: string[]
}

/**
 * Where a body goes without a Readable in between: the relay writes each piece straight
 * to the client's response. Exactly one of `end` and `error` is called, once.
 */
export interface BodySink {
  /** A piece of the body. Return false to stop the stream until `resume()`. */
  data(chunk: Buffer): boolean
  end(trailers: string[]): void
  error(err: Error): void
}

export interface BodyControl {
  /** Start, or go on after `data` returned false. */
  resume(): void
  /** Deliver nothing more to this sink. */
  cancel(): void
}

/** A sink that drops the body: for a body nobody wants, read to its end so the request completes. */
export const DISCARD_BODY: BodySink = { data: () => true, end: () => {}, error: () => {} }

export class MessageReader {
  private readonly source: Duplex
  private readonly decoder: MessageDecoder
  private queue: DecodedMessage[] = []
  private waiters: Array<(err: Error | null, message: DecodedMessage | null) => void> = []
  private pending: Buffer | undefined
  private halted = false
  /** The source ended; bytes may still wait in `pending` behind a head. */
  private sourceEnded = false
  /** The source ended and every byte it gave was decoded: no message can follow. */
  private ended = false
  private failure: Error | undefined
  private sink: BodySink | undefined
  private detached = false

  constructor(source: Duplex, options: MessageReaderOptions = {}) {
    this.source = source
    this.decoder = new MessageDecoder(
      {
        onMessage: (m) => this.onMessage(m),
        onData: (chunk) => this.onData(chunk),
      },
      options.maxMessageSize,
    )
    source.on('data', this.onChunk)
    source.on('end', this.onEnd)
    source.on('error', this.onError)
    source.on('close', this.onClose)
  }

  /** The next non-DATA message, or null when the stream ended cleanly between messages. */
  next(): Promise<DecodedMessage | null> {
    return new Promise((resolve, reject) => this.nextMessage((err, message) => (err ? reject(err) : resolve(message))))
  }

  /**
   * `next()` with a callback, called once: with the message (null at a clean end) or the
   * error. It may be called before this returns, when a message is already decoded;
   * otherwise it is called on a later tick, never from inside the decoder, so the callback
   * may take the body or detach at once. The relay reads every response head this way: no
   * Promise, no async frame per request.
   */
  nextMessage(callback: (err: Error | null, message: DecodedMessage | null) => void): void {
    if (this.queue.length === 0 && !this.failure && !this.ended) this.resumeAfterHead()
    const queued = this.queue.shift()
    if (queued) return callback(null, queued)
    if (this.failure) return callback(this.failure, null)
    if (this.ended) return callback(null, null)
    this.waiters.push(callback)
  }

  /** Read the next message and parse it as JSON of the given type. */
  async nextJson<T>(type: MessageTypeValue, what: string, check: (v: unknown) => T): Promise<T> {
    const message = await this.next()
    if (!message) throw new GwError('GW_ERR_MESSAGE_MALFORMED', `the stream ended before the ${what}`)
    if (message.type !== type) {
      throw new GwError('GW_ERR_MESSAGE_MALFORMED', `expected the ${what}, got message type 0x${message.type.toString(16)}`)
    }
    return check(decodeJson(message.payload, what))
  }

  /**
   * The body that follows the last head, DATA pieces until END, delivered to `sink` once
   * `resume()` is called. Backpressure reaches the source: while the sink refuses data,
   * the source is paused and (on yamux) no window is granted to the peer.
   */
  bodyTo(sink: BodySink): BodyControl {
    if (this.sink) throw new Error('a body was already taken for this head')
    const control: BodyControl = {
      resume: () => {
        if (this.sink === sink) this.resumeAfterHead()
        if (!this.halted) this.source.resume()
      },
      cancel: () => {
        if (this.sink === sink) this.sink = undefined
      },
    }
    if (this.failure) sink.error(this.failure)
    else if (this.ended) sink.error(truncated())
    else this.sink = sink
    return control
  }

  /** The body that follows the last head as a Readable (see `bodyTo`). */
  body(): BodyReadable {
    let control: BodyControl | undefined
    const body = new Readable({
      read: () => control?.resume(),
      destroy: (err, cb) => {
        control?.cancel()
        cb(err)
      },
    }) as BodyReadable
    body.trailers = []
    control = this.bodyTo({
      data: (chunk) => body.push(chunk),
      end: (trailers) => {
        body.trailers = trailers
        body.push(null)
      },
      error: (err) => body.destroy(err),
    })
    return body
  }

  /**
   * Stop decoding and hand the stream over as raw bytes, for an upgraded connection.
   * Returns the bytes already read past the last head; the caller writes them first.
   */
  detach(): Buffer {
    this.detached = true
    this.source.off('data', this.onChunk)
    this.source.off('end', this.onEnd)
    this.source.off('error', this.onError)
    this.source.off('close', this.onClose)
    this.source.pause()
    const rest = this.pending ?? Buffer.alloc(0)
    this.pending = undefined
    return rest
  }

  private onChunk = (chunk: Buffer): void => {
    try {
      const used = this.decoder.push(chunk)
      if (used < chunk.length) {
        this.pending = chunk.subarray(used)
      }
    } catch (err) {
      this.fail(err as Error)
      this.source.destroy(err as Error)
    }
  }

  private resumeAfterHead(): void {
    if (!this.halted || this.detached) return
    this.halted = false
    const rest = this.pending
    this.pending = undefined
    if (rest) this.onChunk(rest)
    if (this.halted || this.pending) return
    if (this.sourceEnded) this.settleEnd()
    else this.source.resume()
  }

  private onMessage(message: DecodedMessage): void {
    const sink = this.sink
    if (sink && (message.type === MessageType.END || message.type === MessageType.ABORT)) {
      this.sink = undefined
      if (message.type === MessageType.END) {
        let trailers: string[] = []
        if (message.payload.length > 0) {
          const decoded = decodeJson<unknown>(message.payload, 'trailers')
          if (Array.isArray(decoded) && decoded.every((t) => typeof t === 'string')) trailers = decoded
        }
        sink.end(trailers)
      } else {
        sink.error(abortError(message))
      }
      // The sink may have paused the source on its last piece; what follows (the FIN that
      // frees the stream) must still be read.
      if (!this.halted) this.source.resume()
      return
    }
    if (message.type === MessageType.ABORT) {
      // ABORT instead of a head (the agent gave up before answering) fails the reader:
      // every caller gets it as an error with its code, decoded in one place.
      this.fail(abortError(message))
      return
    }
    if (HEAD_TYPES.has(message.type)) {
      // Pause after a head: the caller decides between body() and detach().
      this.halted = true
      this.decoder.stop()
      this.source.pause()
    }
    const waiter = this.waiters.shift()
    if (waiter) process.nextTick(waiter, null, message)
    else this.queue.push(message)
  }

  private onData(chunk: Buffer): void {
    const sink = this.sink
    if (!sink) {
      this.fail(new GwError('GW_ERR_MESSAGE_MALFORMED', 'body data arrived with no head before it'))
      return
    }
    if (!sink.data(chunk)) this.source.pause()
  }

  private onEnd = (): void => {
    this.sourceEnded = true
    // A short request arrives whole (head, END and FIN in one chunk) while the reader
    // waits behind its head: the end counts once those bytes are decoded, or the body
    // would be cut short and an error built for every bodiless request.
    if (!this.pending) this.settleEnd()
  }

  private settleEnd(): void {
    if (this.ended) return
    this.ended = true
    const sink = this.sink
    if (sink) {
      this.sink = undefined
      sink.error(truncated())
    }
    if (!this.decoder.atBoundary) this.fail(truncated())
    for (const w of this.waiters.splice(0)) process.nextTick(w, null, null)
  }

  private onError = (err: Error): void => this.fail(err)

  private onClose = (): void => {
    if (!this.sourceEnded) this.fail(new GwError('GW_ERR_MUX_CLOSED', 'the stream closed before it ended'))
  }

  private fail(err: Error): void {
    if (this.failure) return
    this.failure = err
    const sink = this.sink
    if (sink) {
      this.sink = undefined
      sink.error(err)
    }
    for (const w of this.waiters.splice(0)) process.nextTick(w, err, null)
  }
}

function truncated(): GwError {
  return new GwError('GW_ERR_UPSTREAM_FAILED', 'the stream ended in the middle of a body')
}

/**
 * The one decoding of ABORT, wherever it arrives (in a body, or instead of a head): a
 * GwError with the peer's code when it is one of ours, GW_ERR_UPSTREAM_FAILED otherwise,
 * since a peer's word cannot pick an arbitrary code for our error page.
 */
function abortError(message: DecodedMessage): GwError {
  let info: { code?: unknown; message?: unknown } | null
  try {
    info = decodeJson<{ code?: unknown; message?: unknown } | null>(message.payload, 'abort')
  } catch (err) {
    return err as GwError
  }
  if (typeof info !== 'object' || info === null) return new GwError('GW_ERR_MESSAGE_MALFORMED', 'malformed abort')
  const code = isErrorCode(info.code) ? info.code : 'GW_ERR_UPSTREAM_FAILED'
  return new GwError(code, typeof info.message === 'string' ? info.message : undefined)
}


/**
 * @deprecated Write through a `MessageWriter` (message-writer.ts), the one encoder; this
 * stays only until the agent's call sites have moved to it.
 */
export function writeJsonMessage(stream: Duplex, type: MessageTypeValue, value: unknown): boolean {
  return stream.write(encodeJsonMessage(type, value))
}

/** @deprecated `MessageWriter.end()`; kept until the agent's call sites have moved. */
export function endMessage(): Buffer {
  return encodeMessageHeader(MessageType.END, 0)
}
