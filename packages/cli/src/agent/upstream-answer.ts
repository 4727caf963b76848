/**
 * An upstream's response as the on_http_response phase sees it, with a body that becomes
 * a Readable only if a rule reads or replaces it.
 *
 * Most response rules touch only the status and headers (add-headers, remove-headers, a
 * compress-response that finds nothing to compress). For them the body can stream from
 * the upstream socket into the relay's stream as it does without a policy: no Readable,
 * no framing pipeline (bench/README.md, F15). The upstream is paused at the head until
 * the phase has run, so no byte is read before it is known where it goes.
 */
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { GwError, type BodySink, stripHopByHop } from '@gw/protocol'
import type { PolicyResponse } from '../policy/index.js'

type TrailerBody = Readable & { trailers?: string[] }

export class UpstreamAnswer implements PolicyResponse {
  status: number
  statusMessage: string
  rawHeaders: string[]
  private readonly resumeUpstream: () => void
  private readonly abortUpstream: (err: Error) => void
  private readable: TrailerBody | undefined
  private replacement: Readable | undefined
  private sink: BodySink | undefined
  /** What arrived before anyone took the body (undici may finish a chunk it was in). */
  private early: Buffer[] = []
  private ended: { trailers: string[] } | { error: Error } | undefined

  constructor(status: number, statusMessage: string, rawHeaders: string[], resume: () => void, abort: (err: Error) => void) {
    this.status = status
    this.statusMessage = statusMessage
    this.rawHeaders = rawHeaders
    this.resumeUpstream = resume
    this.abortUpstream = abort
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

  /** Send the body to `sink` (only while untouched); `resume()` after `data` returned false. */
  streamTo(sink: BodySink): void {
    this.sink = sink
    for (const chunk of this.early.splice(0)) sink.data(chunk)
    if (this.ended) return this.settle(this.ended)
    this.resumeUpstream()
  }

  resume(): void {
    this.resumeUpstream()
  }

  abort(err: Error): void {
    this.abortUpstream(err)
  }

  /** @internal from the dispatch handler */
  onData(chunk: Buffer): boolean {
    if (this.readable) return this.readable.push(chunk)
    if (this.sink) return this.sink.data(chunk)
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
        if (err || !readable.readableEnded) this.abortUpstream(err ?? new GwError('GW_ERR_UPSTREAM_FAILED', 'the response was abandoned'))
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
 * undici's dispatch, resolved at the response head with an UpstreamAnswer: raw header
 * order is kept (undici's `request()` gives an object). The upstream stays paused until
 * the answer's body is taken.
 */
export function dispatchForAnswer(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  isAborted: () => boolean,
): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    let abort: ((err: Error) => void) | undefined
    let answer: UpstreamAnswer | undefined
    dispatcher.dispatch(options, {
      onConnect(abortFn) {
        abort = abortFn
        if (isAborted()) abortFn(new GwError('GW_ERR_UPSTREAM_FAILED', 'the client went away'))
      },
      onHeaders(statusCode, rawHeaders, resume, statusText) {
        if (statusCode < 200) return true
        const headers = rawHeaders.map((h) => (Buffer.isBuffer(h) ? h.toString('latin1') : String(h)))
        answer = new UpstreamAnswer(statusCode, statusText, stripHopByHop(headers), resume, (err) => abort?.(err))
        resolve(answer)
        return false
      },
      onData(chunk) {
        return answer!.onData(chunk)
      },
      onComplete(trailers) {
        answer!.onComplete(trailers && trailers.length > 0 ? trailers.map((t) => (Buffer.isBuffer(t) ? t.toString('latin1') : String(t))) : [])
      },
      onError(err) {
        if (answer) answer.onError(err)
        else reject(err)
      },
    })
  })
}
