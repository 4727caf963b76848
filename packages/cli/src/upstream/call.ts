/**
 * One call to the upstream, through undici's dispatch with the one handler in this file.
 *
 * undici 7 recommends its v2 handler API (`onRequestStart`, `onResponseStart`…), but
 * that API hands over the response headers as an object: the order, case and
 * duplicates of the upstream's headers would be lost, and each response would pay for
 * undici's `parseHeaders`. The v1 handler used here (`onHeaders` with the raw header
 * list) is still supported by undici 7, keeps the headers as the upstream sent them,
 * and lets the relay stream's window pace the upstream socket: when the stream cannot
 * take more, `onData` returns false and undici pauses until `resume()`.
 *
 * The answer resolves at the response head as an `UpstreamAnswer`, whose body goes one
 * of two ways, decided by whoever holds it:
 * - `streamTo(sink)`: straight into the relay's stream, no Readable in between (no
 *   policy, or response rules that left the body alone: bench/README.md, F5 and F15);
 * - `body`: a Readable made on first use, for a response rule that reads or replaces it.
 * Until one of them is taken the upstream is paused, so no byte is read before it is
 * known where it goes. Retries and pools are layered on this (upstream/retry.ts).
 */
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { GwError, type BodySink } from '@gw/protocol'

export interface UpstreamCall {
  origin: string
  /** Path and query, already normalised by the agent. */
  path: string
  method: string
  /** Raw pairs, without hop-by-hop headers. */
  headers: string[]
  body: Readable | null
}

type TrailerBody = Readable & { trailers?: string[] }

export class UpstreamAnswer {
  status: number
  statusMessage: string
  rawHeaders: string[]
  private readonly call: UpstreamRequest
  private readonly resumeUpstream: () => void
  private readable: TrailerBody | undefined
  private replacement: Readable | undefined
  private sink: BodySink | undefined
  /** The sink took the last piece: the upstream may keep reading. */
  flowing = false
  /** What arrived before anyone took the body (undici may finish a chunk it was in). */
  private early: Buffer[] = []
  private ended: { trailers: string[] } | { error: Error } | undefined

  constructor(call: UpstreamRequest, status: number, statusMessage: string, rawHeaders: string[], resume: () => void) {
    this.call = call
    this.status = status
    this.statusMessage = statusMessage
    this.rawHeaders = rawHeaders
    this.resumeUpstream = resume
  }

  /** The body as a Readable, made on first use; a rule may also replace it. */
  get body(): Readable {
    if (this.replacement) return this.replacement
    if (!this.readable) this.readable = this.makeReadable()
    return this.readable
  }

  set body(value: Readable) {
    this.replacement = value
  }

  /** No rule read or replaced the body: it can go straight to the relay. */
  get untouched(): boolean {
    return !this.readable && !this.replacement
  }

  /** Send the body to `sink` (only while untouched). After `data` returned false, call `resume()`. */
  streamTo(sink: BodySink): void {
    this.sink = sink
    this.flowing = true
    for (const chunk of this.early.splice(0)) this.flowing = sink.data(chunk)
    if (this.ended) return this.settle(this.ended)
    if (this.flowing) this.resumeUpstream()
  }

  resume(): void {
    this.flowing = true
    this.resumeUpstream()
  }

  abort(err: Error): void {
    this.call.abort(err)
  }

  /** @internal from the dispatch handler */
  onData(chunk: Buffer): boolean {
    if (this.readable) return this.readable.push(chunk)
    if (this.sink) return (this.flowing = this.sink.data(chunk))
    this.early.push(chunk)
    return false
  }

  /** @internal */
  onComplete(trailers: string[]): void {
    this.ended = { trailers }
    if (this.readable) {
      this.readable.trailers = trailers
      this.readable.push(null)
    } else if (this.sink) {
      this.settle(this.ended)
    }
  }

  /** @internal */
  onError(err: Error): void {
    this.ended = { error: err }
    if (this.readable) this.readable.destroy(err)
    else if (this.sink) this.settle(this.ended)
  }

  private settle(end: { trailers: string[] } | { error: Error }): void {
    const sink = this.sink!
    this.sink = undefined
    if ('error' in end) sink.error(end.error)
    else sink.end(end.trailers)
  }

  private makeReadable(): TrailerBody {
    const readable: TrailerBody = new Readable({
      read: () => this.resumeUpstream(),
      destroy: (err, cb) => {
        if (err || !readable.readableEnded) this.call.abort(err ?? new GwError('GW_ERR_UPSTREAM_FAILED', 'the response was abandoned'))
        cb(err)
      },
    })
    for (const chunk of this.early.splice(0)) readable.push(chunk)
    if (this.ended) {
      if ('error' in this.ended) readable.destroy(this.ended.error)
      else {
        readable.trailers = this.ended.trailers
        readable.push(null)
      }
    }
    return readable
  }
}

/**
 * The dispatch handler. `answer` resolves at the final response head (interim 1xx
 * heads are not forwarded) and rejects when the call fails before it; after the head,
 * failures reach the answer's body. `onHead`, when given, runs inside undici's
 * `onHeaders`, so a caller that streams the body at once (`answer.streamTo`) costs no
 * pause and resume of the upstream parser.
 */
export class UpstreamRequest implements Dispatcher.DispatchHandler {
  readonly answer: Promise<UpstreamAnswer>
  private resolveAnswer!: (answer: UpstreamAnswer) => void
  private rejectAnswer!: (err: Error) => void
  private abortCall: ((err: Error) => void) | undefined
  private abortedWith: Error | undefined
  private current: UpstreamAnswer | undefined
  private readonly onHead: ((answer: UpstreamAnswer) => void) | undefined

  constructor(onHead?: (answer: UpstreamAnswer) => void) {
    this.onHead = onHead
    this.answer = new Promise((resolve, reject) => {
      this.resolveAnswer = resolve
      this.rejectAnswer = reject
    })
  }

  /** Stop the call: before the head the answer rejects with `err`, after it the body fails. */
  abort(err: Error): void {
    if (this.abortCall) this.abortCall(err)
    else this.abortedWith ??= err
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortCall = abort
    if (this.abortedWith) abort(this.abortedWith)
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true
    const headers: string[] = new Array(rawHeaders.length)
    for (let i = 0; i < rawHeaders.length; i++) headers[i] = rawHeaders[i]!.toString('latin1')
    const answer = new UpstreamAnswer(this, statusCode, statusText, headers, resume)
    this.current = answer
    this.onHead?.(answer)
    this.resolveAnswer(answer)
    return answer.flowing
  }

  onData(chunk: Buffer): boolean {
    return this.current!.onData(chunk)
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    this.current!.onComplete(trailers && trailers.length > 0 ? trailers.map((t) => (Buffer.isBuffer(t) ? t.toString('latin1') : String(t))) : [])
  }

  onError(err: Error): void {
    if (this.current) this.current.onError(err)
    else this.rejectAnswer(err)
  }
}

/**
 * Start a call. The returned request's `answer` settles as described above; `abort()`
 * stops it (the client went away).
 *
 * @example
 * const call = callUpstream(dispatcher, { origin, path: '/x', method: 'GET', headers: [], body: null })
 * const answer = await call.answer          // rejects: refused, timed out…
 * answer.streamTo(sink)
 */
export function callUpstream(dispatcher: Dispatcher, call: UpstreamCall, onHead?: (answer: UpstreamAnswer) => void): UpstreamRequest {
  const request = new UpstreamRequest(onHead)
  // An early rejection nobody awaits yet (a sink-streaming caller) must not be unhandled.
  request.answer.catch(noop)
  dispatcher.dispatch(call, request)
  return request
}

function noop(): void {}
