/**
 * One call to the upstream whose response streams straight into the relay's stream:
 * undici's dispatch handler hands over the raw response headers (order, case and
 * duplicates kept) and each body chunk, and the yamux window paces the upstream socket
 * (when the stream cannot take more, onData returns false and undici pauses until the
 * stream drains). No Readable, Transform or pipeline stands in between.
 */
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import {
  GwError,
  writeJsonMessage,
  type BodySink,
  encodeJsonMessage,
  encodeMessageHeader,
  MessageType,
  stripHopByHop,
  type ResponseHead,
  type Stream,
} from '@gw/protocol'
import type { Exchange } from './events.js'
import { now } from './exchange.js'
import type { HandlerShared } from './request-handler.js'
import { upstreamErrorCode } from './upstream-errors.js'

export interface UpstreamCall {
  origin: string
  path: string
  method: string
  headers: string[]
  body: Readable | null
}

export type CallEnd = (error?: { code: string; message: string }) => void

/**
 * Resolves once the response head is on the stream. Rejects, having written nothing,
 * when the upstream fails before it answers, so the caller can answer with an error
 * page or try another target. `onEnd` runs once after the head: when the body is
 * complete, or with the failure that cut it short (the peer then gets ABORT).
 */
export function streamUpstreamResponse(
  stream: Stream,
  call: UpstreamCall,
  shared: HandlerShared,
  exchange: Exchange | undefined,
  onEnd: CallEnd,
): Promise<void> {
  const { events } = shared
  return new Promise((resolve, reject) => {
    let abortUpstream: ((err: Error) => void) | undefined
    let body: BodySink | undefined
    // Before the head, a client that goes away only aborts the call (onError then rejects);
    // from the head on, the body sink watches the stream.
    const onEarlyClose = (): void => abortUpstream?.(new GwError('GW_ERR_UPSTREAM_FAILED', 'the client went away'))
    stream.once('close', onEarlyClose)

    shared.dispatcher.dispatch(call, {
      onConnect(abort) {
        abortUpstream = abort
        if (stream.destroyed) abort(new GwError('GW_ERR_UPSTREAM_FAILED', 'the client went away'))
      },
      onHeaders(statusCode, rawHeaders, resume, statusText) {
        // Interim responses (103 Early Hints…) are not forwarded; the final one follows.
        if (statusCode < 200) return true
        stream.off('close', onEarlyClose)
        body = bodyToStream(stream, exchange, shared, call.origin, { resume, abort: (err) => abortUpstream?.(err) }, onEnd)
        const headers: string[] = new Array(rawHeaders.length)
        for (let i = 0; i < rawHeaders.length; i++) headers[i] = rawHeaders[i]!.toString('latin1')
        const response: ResponseHead = { status: statusCode, statusMessage: statusText, rawHeaders: stripHopByHop(headers) }
        if (exchange) {
          exchange.timing.upstreamHeadersAt = now()
          exchange.response = { status: statusCode, statusMessage: statusText, rawHeaders: response.rawHeaders }
          events.emit('exchange:response', exchange)
        }
        const ok = writeJsonMessage(stream, MessageType.RESPONSE_HEAD, response)
        resolve()
        return ok
      },
      onData(chunk) {
        return body!.data(chunk)
      },
      onComplete(trailers) {
        body!.end(trailers && trailers.length > 0 ? trailers.map((t) => (Buffer.isBuffer(t) ? t.toString('latin1') : String(t))) : [])
      },
      onError(err) {
        if (body) return body.error(err)
        stream.off('close', onEarlyClose)
        reject(err)
      },
    } satisfies Dispatcher.DispatchHandler)
  })
}

/** What a body sink needs of the upstream call it reads from. */
export interface UpstreamControl {
  resume(): void
  abort(err: Error): void
}

/**
 * A response body into the relay's stream: each piece as a DATA message (false when the
 * stream's window is full; the stream's 'drain' resumes the upstream), then END with the
 * trailers, or ABORT with the upstream's failure. The relay resets the stream when the
 * public client goes away, which aborts the upstream call. `onEnd` runs once: after END or
 * ABORT, or when the client went away.
 */
export function bodyToStream(
  stream: Stream,
  exchange: Exchange | undefined,
  shared: Pick<HandlerShared, 'events'>,
  origin: string,
  upstream: UpstreamControl,
  onEnd: CallEnd,
): BodySink {
  let done = false
  const onDrain = (): void => upstream.resume()
  const onClose = (): void => {
    upstream.abort(new GwError('GW_ERR_UPSTREAM_FAILED', 'the client went away'))
    finish({ code: 'GW_ERR_UPSTREAM_FAILED', message: 'the client aborted the request' })
  }
  const finish = (error?: { code: string; message: string }): void => {
    if (done) return
    done = true
    stream.off('drain', onDrain)
    stream.off('close', onClose)
    onEnd(error)
  }
  stream.on('drain', onDrain)
  stream.once('close', onClose)
  return {
    data(chunk) {
      if (exchange) {
        exchange.bytesOut += chunk.length
        shared.events.emit('exchange:response-body', exchange, chunk)
      }
      stream.cork()
      stream.write(encodeMessageHeader(MessageType.DATA, chunk.length))
      const ok = stream.write(chunk)
      stream.uncork()
      return ok
    },
    end(trailers) {
      stream.end(trailers.length > 0 ? encodeJsonMessage(MessageType.END, trailers) : encodeMessageHeader(MessageType.END, 0))
      finish()
    },
    error(err) {
      const code = upstreamErrorCode(err)
      const message = `${origin}: ${describeUpstreamError(err)}`
      if (stream.writable) stream.end(encodeJsonMessage(MessageType.ABORT, { code, message }))
      finish({ code, message })
    },
  }
}

export function describeUpstreamError(err: Error): string {
  const e = err as NodeJS.ErrnoException
  if (e.code === 'UND_ERR_HEADERS_TIMEOUT') return 'the upstream did not send response headers in time'
  if (e.code === 'UND_ERR_CONNECT_TIMEOUT') return 'connecting to the upstream timed out'
  return e.message || String(e.code)
}
