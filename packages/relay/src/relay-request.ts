/**
 * One HTTP request through the tunnel: open a stream on the agent's link, send the
 * head and the framed body, then relay the response head, body and trailers back.
 *
 * Backpressure runs end to end: the client socket, the yamux window and the agent's
 * upstream call each pause the side before them, so no body is ever buffered whole.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  GwError,
  type ErrorCode,
  DISCARD_BODY,
  MessageReader,
  MessageWriter,
  sendFramedBody,
  decodeJson,
  MessageType,
  type DecodedMessage,
  checkResponseHead,
  type RequestHead,
  type ResponseHead,
  ERROR_CODE_HEADER,
  renderErrorPage,
  type Stream,
} from '@gw/protocol'
import { checkAgentResponse, checkAgentTrailers, responseHasBody } from './agent-response.js'
import { isHttp2, stageHttp2Head } from './h2-edge.js'

/**
 * Break off a response whose head is out. Over HTTP/1.1 the client's connection is
 * destroyed without an error object: the error would be emitted on a socket that may have
 * no listener left (npm run fuzz's relay front found one that crashed the relay), and the
 * broken connection is the whole signal. Over HTTP/2 the error resets the stream (without
 * one, the stream would end as if the body were complete).
 */
function cutResponse(res: ServerResponse, http2: boolean, err: Error): void {
  if (http2) res.destroy(err)
  else res.destroy()
}

export function sendErrorPage(req: IncomingMessage, res: ServerResponse, code: ErrorCode, detail: string, status?: number): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const page = renderErrorPage(code, detail, req.headers.accept, status)
  // A refused writeHead (an agent's invalid reason phrase or header) leaves its reason
  // on the response, and Node would reuse it here and throw again, outside any handler.
  // (HTTP/2 has no reason phrase; setting one there only prints a warning.)
  if (!isHttp2(req)) res.statusMessage = ''
  try {
    res.writeHead(page.status, page.headers)
  } catch {
    res.destroy()
    return
  }
  res.end(req.method === 'HEAD' ? undefined : page.body)
}

/**
 * Sees the agent's response on its way to the client (the relay's cache, cache/exchange.ts).
 * `head` may add headers, or answer the client itself and return true: the body is then discarded.
 */
export interface ResponseTap {
  head(status: number, headers: string[], agentAnswer: boolean): boolean
  data(chunk: Buffer): void
  /** The body is complete; `trailers`: it came with trailers. */
  end(trailers: boolean): void
}

/**
 * `maxBody` is the token's body limit: a body without a Content-Length that passes it
 * ends the exchange with 413 (or a cut connection, once the response has started).
 */
export function relayRequest(req: IncomingMessage, res: ServerResponse, stream: Stream, head: RequestHead, maxHeadSize: number, tap?: ResponseTap, maxBody?: number): void {
  let finished = false
  const reader = new MessageReader(stream, { maxMessageSize: maxHeadSize })
  const out = new MessageWriter(stream)
  stream.on('error', () => {}) // surfaced through the reader

  // A client that goes away mid-request resets the stream, and the agent aborts the upstream call.
  // (`finished` too: an HTTP/2 response reset by its client reports writableFinished.)
  res.on('close', () => {
    if (!finished || !res.writableFinished) stream.destroy()
  })
  // A pipelined request whose response still waits its turn has no socket yet, so its
  // response never closes when the connection dies: it would hold its stream for ever,
  // waiting for a body that never comes or for a client that will never drain it.
  // (HTTP/1 connections only: an HTTP/2 stream closes its response when its connection
  // goes. By the connection, not the version: an HTTP/1 request line may say HTTP/2.0.)
  if (!isHttp2(req)) {
    const socket = req.socket
    const onSocketClose = (): void => {
      if (!res.writableFinished) stream.destroy()
    }
    socket.once('close', onSocketClose)
    const forget = (): void => void socket.off('close', onSocketClose)
    res.once('finish', forget)
    res.once('close', forget)
  }
  // A response that is complete while the client is still uploading (an error page for
  // an upstream that died mid-upload, a 413…) ends the exchange: the rest of the body
  // has nowhere to go, so the stream is reset, and the connection closes after the
  // response instead of reading an upload that may never end.
  const endsUpload = (): void => {
    if (head.hasBody && !req.complete) res.shouldKeepAlive = false
  }
  res.on('finish', () => {
    if (head.hasBody && !req.complete) stream.destroy()
  })

  let bodySent = false
  const sendBody = (): void => {
    if (bodySent) return
    bodySent = true
    if (maxBody !== undefined) {
      let seen = 0
      const count = (chunk: Buffer): void => {
        seen += chunk.length
        if (seen <= maxBody) return
        req.off('data', count)
        req.unpipe()
        fail(new GwError('GW_ERR_BODY_TOO_LARGE', `the request body passed ${maxBody} bytes, this tunnel's authtoken's limit`))
      }
      req.on('data', count)
    }
    sendFramedBody(req, out, (err) => {
      if (err && !finished) stream.destroy()
    })
  }
  if (!head.hasBody) {
    // Most requests (GET, HEAD) have no body: head and END leave in one write, with
    // no pipeline to set up and tear down.
    bodySent = true
    req.resume()
    out.requestWithoutBody(head)
  } else {
    out.requestHead(head)
    if (!head.expectContinue) sendBody()
  }

  const finish = (): void => {
    finished = true
  }

  const fail = (err: Error): void => {
    finish()
    const code: ErrorCode = err instanceof GwError ? err.code : 'GW_ERR_UPSTREAM_FAILED'
    if (res.headersSent) cutResponse(res, isHttp2(req), err)
    else {
      endsUpload()
      sendErrorPage(req, res, code === 'GW_ERR_MUX_CLOSED' ? 'GW_ERR_AGENT_OFFLINE' : code, err.message)
    }
    stream.destroy()
  }

  // Callbacks, not an async loop: a Generator and three Promises per request were the
  // largest part of the relay's own memory per request in flight (bench/README.md, F4).
  const onMessage = (err: Error | null, message: DecodedMessage | null): void => {
    if (err) return fail(err)
    try {
      if (!message) throw new GwError('GW_ERR_UPSTREAM_FAILED', 'the agent closed the stream without a response')
      if (message.type === MessageType.CONTINUE) {
        res.writeContinue()
        sendBody()
        reader.nextMessage(onMessage)
        return
      }
      if (message.type !== MessageType.RESPONSE_HEAD) {
        throw new GwError('GW_ERR_MESSAGE_MALFORMED', `unexpected message type 0x${message.type.toString(16)} before the response head`)
      }
      writeResponse(checkResponseHead(decodeJson(message.payload, 'response head')))
    } catch (e) {
      fail(e as Error)
    }
  }

  const writeResponse = (response: ResponseHead): void => {
    if (response.close) {
      // The policy's close-connection: no response at all, the client's connection ends.
      reader.bodyTo(DISCARD_BODY).resume()
      finish()
      endsUpload()
      res.statusCode = 444 // for the access log and metrics: nothing is written
      res.destroy()
      stream.destroy()
      return
    }
    if (response.error) {
      // The agent reports a gw error (upstream refused, timed out…); the page is made here, in one place.
      reader.bodyTo(DISCARD_BODY).resume()
      finish()
      endsUpload()
      sendErrorPage(req, res, response.error.code, response.error.message)
      return
    }
    // An Expect: 100-continue request answered without CONTINUE: its body is not wanted.
    if (!bodySent) {
      req.resume()
      stream.end()
      bodySent = true
    }
    const checked = checkAgentResponse(response, false)
    endsUpload()
    const headers = checked.headers
    if (response.errorCode) headers.push(ERROR_CODE_HEADER, response.errorCode)
    if (tap?.head(checked.status, headers, response.errorCode !== undefined)) {
      reader.bodyTo(DISCARD_BODY).resume()
      finish()
      return
    }
    try {
      // HTTP/2 has no reason phrase (RFC 9113 §8.3.2), and its head waits for the first byte of body.
      if (isHttp2(req)) stageHttp2Head(res, checked.status, headers)
      else if (checked.statusMessage === undefined) res.writeHead(checked.status, headers)
      else res.writeHead(checked.status, checked.statusMessage, headers)
    } catch (err) {
      // A header Node refuses to write (a control character in a value, an invalid name):
      // the agent's response cannot be relayed as sent.
      reader.bodyTo(DISCARD_BODY).resume()
      finish()
      stream.destroy()
      sendErrorPage(req, res, 'GW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream's response head is invalid: ${(err as Error).message}`)
      return
    }
    // A HEAD, 204 or 304 has no body whatever its Content-Length says.
    const expected = responseHasBody(req.method, checked.status) ? checked.contentLength : 0
    pipeBody(reader, res, expected, finish, isHttp2(req), tap)
  }

  reader.nextMessage(onMessage)
}

/**
 * The response body, piece by piece from the reader straight into the client's response:
 * no Readable in between, which was a tenth of the relay's CPU per small request.
 */
function pipeBody(reader: MessageReader, res: ServerResponse, expected: number | undefined, done: () => void, http2: boolean, tap: ResponseTap | undefined): void {
  // With a Content-Length, the agent's body must be exactly that long: a byte more would
  // reach the client as the start of the next response on a pipelined connection, a
  // byte less leaves the client waiting. Either way the connection is cut, and nothing
  // beyond the declared length is ever written.
  let left = expected ?? Infinity
  let cut = false
  const cutConnection = (why: string): false => {
    cut = true
    cutResponse(res, http2, new GwError('GW_ERR_AGENT_BAD_RESPONSE', why))
    control.cancel()
    done()
    return false
  }
  // One decoded ws message can hold many DATA pieces, delivered in one tick: corking
  // the client socket for the tick sends them in one write instead of one each.
  let corked = false
  const uncork = (): void => {
    corked = false
    res.uncork()
  }
  // Pieces decoded from one chunk keep coming after a refused write: wait for one 'drain'.
  let waiting = false
  const onDrain = (): void => {
    waiting = false
    control.resume()
  }
  const control = reader.bodyTo({
    data(chunk) {
      if (cut) return false
      if (chunk.length > left) return cutConnection(`the agent sent more body than its Content-Length of ${expected}`)
      left -= chunk.length
      tap?.data(chunk)
      if (!corked) {
        corked = true
        res.cork()
        process.nextTick(uncork)
      }
      if (res.write(chunk)) return true
      if (!waiting) {
        waiting = true
        res.once('drain', onDrain)
      }
      return false
    },
    end(trailers) {
      if (cut) return
      if (left !== Infinity && left > 0) return void cutConnection(`the agent ended the body ${left} bytes short of its Content-Length of ${expected}`)
      if (trailers.length > 0) res.addTrailers(http2 ? trailerObject(checkAgentTrailers(trailers)) : checkAgentTrailers(trailers))
      tap?.end(trailers.length > 0)
      res.end()
      done()
    },
    error(err) {
      if (cut) return
      // The response is under way: the only honest signal left is a broken connection.
      cutResponse(res, http2, err)
      done()
    },
  })
  control.resume()
}

/** Trailers as the HTTP/2 response takes them: an object, a repeated name's values in an array. */
function trailerObject(pairs: [string, string][]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of pairs) {
    const key = name.toLowerCase()
    const seen = out[key]
    out[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value]
  }
  return out
}
