/**
 * The one place the agent writes a response onto the relay's stream: the head, the
 * body (streamed from the upstream or from a policy's Readable), the gw error answers,
 * and CONTINUE. It is also the only place that cleans the response headers: hop-by-hop
 * headers, and any `gw-error-code` the upstream sent (only gw may name an error; the
 * relay strips it again at the edge), so every response path gets the same treatment.
 *
 * The bytes are the protocol's `MessageWriter`'s (the one encoder); this file decides
 * what to write. A full stream window makes a body piece return false, and the stream's
 * 'drain' resumes the source (bench/README.md, F5).
 *
 * `finish` runs once per response: after END or ABORT, after an error answer, or when
 * the client went away.
 *
 * A response to HEAD, and a 204 or 304, has no body (RFC 9110 §6.4.1): whatever body the
 * upstream, a policy's answer or an error page brings is dropped here, so the relay never
 * sees more body than the response may carry (it cuts the client's connection if it does).
 */
import type { Duplex, Readable } from 'node:stream'
import {
  CodedError, ERROR_CODE_HEADER, GwError, HOP_BY_HOP, isErrorCode, MessageWriter,
  renderCodedErrorPage, type BodySink, type ResponseHead,
} from '@gw/protocol'
import { upstreamErrorCode, describeUpstreamError } from '../upstream/failure.js'
import { CliErrorCodes, isCliErrorCode } from '../errors.js'
import type { Recorder } from './recorder.js'

/** The catalogue's one-line meaning of a code, for the error page's title. */
function codeTitle(code: string): string | undefined {
  return isCliErrorCode(code) ? CliErrorCodes[code].message : undefined
}

export interface ErrorReport {
  code: string
  message: string
}

/** What a body sink needs of its source: the upstream call, or a policy's Readable. */
export interface BodySource {
  resume(): void
  abort(err: Error): void
}

/** Headers a response must not carry past the agent; order and case of the rest kept. */
export function cleanResponseHeaders(rawHeaders: string[], keepUpgrade = false): string[] {
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
    if (keepUpgrade && (name === 'connection' || name === 'upgrade')) {
      out.push(rawHeaders[i]!, rawHeaders[i + 1]!)
      continue
    }
    if (HOP_BY_HOP.has(name) || name === ERROR_CODE_HEADER || named?.has(name)) continue
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!)
  }
  return out
}

export class ResponseWriter {
  private readonly stream: Duplex
  private readonly out: MessageWriter
  private readonly recorder: Recorder | undefined
  private readonly accept: string | undefined
  private readonly onFinish: ((error: ErrorReport | undefined) => void) | undefined
  private finished = false
  headSent = false
  private source: BodySource | undefined
  private readonly onDrain = (): void => this.source?.resume()
  /**
   * This response has no body: body pieces are read and dropped. Set for a HEAD request
   * from the start (no answer to it has a body, an error page included), and by `head()`
   * for a 204 or 304.
   */
  private bodiless: boolean

  constructor(stream: Duplex, recorder: Recorder | undefined, accept: string | undefined, onFinish?: (error: ErrorReport | undefined) => void, method?: string) {
    this.bodiless = method === 'HEAD'
    this.stream = stream
    this.out = new MessageWriter(stream)
    this.recorder = recorder
    this.accept = accept
    this.onFinish = onFinish
  }

  get done(): boolean {
    return this.finished
  }

  /** Tell the relay to send the client `100 Continue` and the body. */
  continue(): void {
    if (this.stream.writable) this.out.continue()
  }

  /**
   * The response head. `errorCode` marks an answer of gw's own with its own body (a
   * policy's 401, a failed transform): the relay puts it in `gw-error-code`.
   */
  head(status: number, statusMessage: string | undefined, rawHeaders: string[], errorCode?: string, keepUpgrade = false): boolean {
    const headers = cleanResponseHeaders(rawHeaders, keepUpgrade)
    const head: ResponseHead = { status, rawHeaders: headers }
    if (statusMessage) head.statusMessage = statusMessage
    if (errorCode) head.errorCode = errorCode
    this.headSent = true
    if (status === 204 || status === 304) this.bodiless = true
    this.recorder?.response(status, statusMessage ?? '', headers)
    return this.out.responseHead(head)
  }

  /**
   * Answer with a gw error. A wire code goes as the head's `error` and the relay
   * renders the page; a code of the agent's or the policy's tables is rendered here
   * and named in `errorCode`. Nothing is written when a head already went (the
   * response is cut with ABORT instead) or the stream is gone.
   */
  error(code: string, message: string, status?: number): void {
    if (this.headSent) return this.abort(code, message)
    if (!this.stream.writable) return this.finish({ code, message })
    this.headSent = true
    let head: ResponseHead
    let body: Buffer | undefined
    if (isErrorCode(code) && status === undefined) {
      head = { status: 502, rawHeaders: [], error: { code, message } }
    } else {
      const page = renderCodedErrorPage(code, status ?? 500, codeTitle(code) ?? message, message, this.accept)
      // The page names the code in a header; the head's errorCode is how the relay sets it.
      head = { status: page.status, rawHeaders: cleanResponseHeaders(Object.entries(page.headers).flat() as string[]), errorCode: code }
      body = page.body
    }
    this.recorder?.response(head.status, '', head.rawHeaders)
    if (body && !this.bodiless) {
      this.out.responseHead(head)
      this.out.data(body)
      this.out.end()
    } else {
      this.out.responseWithoutBody(head)
    }
    this.finish({ code, message })
  }

  /**
   * The policy's close-connection: a head that tells the relay to close the client's
   * connection without a response. Its 444 is what a relay that does not know `close`
   * writes instead (nginx's "connection closed without response").
   */
  closeConnection(): void {
    if (this.headSent || !this.stream.writable) return this.finish(undefined)
    this.headSent = true
    const head: ResponseHead = { status: 444, rawHeaders: [], close: true }
    this.recorder?.response(444, 'Connection Closed', [])
    this.out.responseWithoutBody(head)
    this.finish(undefined)
  }

  /** An error from anywhere in the pipeline, as the client should see it. */
  fail(err: unknown, origin?: string): void {
    const e = err as Error
    if (e instanceof CodedError) return this.error(e.code, e.message, isErrorCode(e.code) ? undefined : e.status)
    const code = upstreamErrorCode(e)
    this.error(code, `${origin ? `${origin}: ` : ''}${describeUpstreamError(e)}`)
  }

  /** Cut a response whose head is out: the relay can only break the client's connection. */
  private abort(code: string, message: string): void {
    this.out.abort(isErrorCode(code) ? code : 'GW_ERR_UPSTREAM_FAILED', message)
    this.finish({ code, message })
  }

  /**
   * A sink for the response body: DATA per piece, then END with the trailers, or ABORT
   * with the source's failure. Backpressure goes back to `source`.
   */
  sink(source: BodySource, origin: string): BodySink {
    this.source = source
    this.stream.on('drain', this.onDrain)
    return {
      data: (chunk) => {
        if (this.bodiless) return true
        this.recorder?.responseBody(chunk)
        return this.out.data(chunk)
      },
      end: (trailers) => {
        this.out.end(trailers)
        this.finish(undefined)
      },
      error: (err) => {
        if (err instanceof CodedError) return this.abort(err.code, err.message)
        this.abort(upstreamErrorCode(err), `${origin}: ${describeUpstreamError(err)}`)
      },
    }
  }

  /** A body from a Readable (a policy's answer, or a response a rule rewrote). */
  send(body: Readable, origin: string): void {
    const sink = this.sink({ resume: () => body.resume(), abort: (err) => body.destroy(err) }, origin)
    body.on('data', (chunk: Buffer) => {
      if (!sink.data(chunk)) body.pause()
    })
    // A body from the relay's reader or an UpstreamAnswer carries raw trailer pairs.
    body.once('end', () => {
      const trailers = (body as { trailers?: unknown }).trailers
      sink.end(Array.isArray(trailers) ? trailers as string[] : [])
    })
    body.once('error', (err) => sink.error(err))
  }

  /** The client went away: stop the body's source and close the record. */
  clientGone(): void {
    this.source?.abort(new GwError('GW_ERR_UPSTREAM_FAILED', 'the client went away'))
    this.finish({ code: 'GW_ERR_UPSTREAM_FAILED', message: 'the client aborted the request' })
  }

  finish(error: ErrorReport | undefined): void {
    if (this.finished) return
    this.finished = true
    if (this.source) {
      this.stream.off('drain', this.onDrain)
      this.source = undefined
    }
    this.recorder?.end(error)
    this.onFinish?.(error)
  }
}
