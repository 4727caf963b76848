/**
 * The agent's request pipeline when an endpoint has a traffic policy:
 *
 *   stream → PolicyRequest → on_http_request → (respond | forward → upstream pool) → on_http_response → stream
 *
 * request-handler.ts hands a stream here instead of forwarding it directly when
 * `endpoint.policy` is set and not empty, so an endpoint without a policy pays nothing.
 *
 * The upstream is called through the agent's undici dispatcher with a handler that
 * keeps raw headers and turns the body into a Readable whose backpressure reaches the
 * upstream socket (the handler returns false when the Readable is full; `read()`
 * resumes). Pools come from the `forward` action; an idempotent request with no body is
 * tried once more on another target after a connection failure; the response is
 * released to the pool when its body has been written out.
 */
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { ErrorCode } from '@gw/protocol/errors'
import { encodeJsonMessage, encodeMessageHeader, MessageType } from '@gw/protocol/message-codec'
import { getRawHeader, stripHopByHop, type RequestHead, type ResponseHead } from '@gw/protocol/heads'
import type { BodyReadable } from '@gw/protocol/message-stream'
import type { Stream } from '@gw/protocol/mux/index'
import type { Exchange } from '../agent/events.js'
import { respondError, upstreamHeaders, type EndpointRuntime, type HandlerShared } from '../agent/request-handler.js'
import { upstreamErrorCode } from '../agent/upstream-errors.js'
import { isIdempotentMethod, sendWithRetry, UpstreamPoolDownError, type UpstreamTarget } from '../upstream/index.js'
import type { CompiledPolicy } from './engine.js'
import { createPolicyState, type PolicyState } from './state.js'
import type { PolicyRequest, PolicyResponse } from './types.js'

function now(): number {
  return performance.timeOrigin + performance.now()
}

/** Call the upstream; resolves at the response head with a streaming body. */
function dispatchToResponse(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, onAbort: (abort: (err: Error) => void) => void): Promise<PolicyResponse> {
  return new Promise((resolve, reject) => {
    let resume: (() => void) | undefined
    let body: Readable | undefined
    let settled = false
    dispatcher.dispatch(options, {
      onConnect(abort) {
        onAbort(abort)
      },
      onHeaders(statusCode, rawHeaders, resumeUpstream) {
        if (statusCode < 200) return true
        resume = resumeUpstream
        const headers: string[] = new Array(rawHeaders.length)
        for (let i = 0; i < rawHeaders.length; i++) headers[i] = rawHeaders[i]!.toString('latin1')
        body = new Readable({ read: () => resume?.() })
        settled = true
        resolve({ status: statusCode, rawHeaders: stripHopByHop(headers), body })
        return true
      },
      onData(chunk) {
        return body!.push(chunk)
      },
      onComplete() {
        body?.push(null)
      },
      onError(err) {
        if (!settled) {
          settled = true
          reject(err)
        } else body?.destroy(err)
      },
    })
  })
}

async function writeResponse(stream: Stream, res: PolicyResponse, exchange: Exchange | undefined, shared: HandlerShared, errorCode?: string): Promise<void> {
  const head: ResponseHead & { errorCode?: string } = { status: res.status, rawHeaders: stripHopByHop(res.rawHeaders) }
  if (errorCode) head.errorCode = errorCode
  if (exchange) {
    exchange.timing.upstreamHeadersAt ??= now()
    exchange.response = { status: res.status, statusMessage: '', rawHeaders: head.rawHeaders }
    shared.events.emit('exchange:response', exchange)
  }
  if (!stream.writable) {
    res.body.destroy()
    return
  }
  stream.write(encodeJsonMessage(MessageType.RESPONSE_HEAD, head))
  for await (const c of res.body) {
    const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c as string)
    if (chunk.length === 0) continue
    if (exchange) {
      exchange.bytesOut += chunk.length
      shared.events.emit('exchange:response-body', exchange, chunk)
    }
    if (!stream.writable) throw new Error('the client went away')
    stream.cork()
    stream.write(encodeMessageHeader(MessageType.DATA, chunk.length))
    const ok = stream.write(chunk)
    stream.uncork()
    if (!ok) await new Promise<void>((resolve) => {
      const done = (): void => {
        stream.off('drain', done)
        stream.off('close', done)
        resolve()
      }
      stream.on('drain', done)
      stream.on('close', done)
    })
  }
  if (stream.writable) stream.end(encodeMessageHeader(MessageType.END, 0))
}

export async function handlePolicyStream(
  stream: Stream,
  body: BodyReadable,
  head: RequestHead,
  endpoint: EndpointRuntime,
  shared: HandlerShared,
  exchange: Exchange | undefined,
  policy: CompiledPolicy,
): Promise<void> {
  let ended = false
  const finish = (error?: { code: string; message: string }): void => {
    if (ended) return
    ended = true
    if (exchange) {
      exchange.timing.endAt = now()
      if (error) exchange.error = error
      shared.events.emit('exchange:end', exchange)
    }
  }
  let abortUpstream: ((err: Error) => void) | undefined
  stream.once('close', () => {
    if (ended) return
    abortUpstream?.(new Error('the client went away'))
    finish({ code: 'GW_ERR_UPSTREAM_FAILED', message: 'the client aborted the request' })
  })

  const hasBody = head.hasBody
  if (!hasBody) body.resume()
  const original = hasBody ? body : Readable.from([])
  const req: PolicyRequest = {
    method: head.method,
    target: head.target,
    rawHeaders: [...head.rawHeaders],
    host: getRawHeader(head.rawHeaders, 'host') ?? '',
    scheme: head.scheme,
    clientIp: head.remoteAddress,
    clientPort: head.remotePort,
    body: original,
  }
  const state: PolicyState = createPolicyState()
  try {
    const outcome = await policy.onHttpRequest(req, state)
    if (outcome.kind === 'respond') {
      if (exchange) exchange.verdict = outcome.verdict
      // The request body is not wanted; drain it so the stream's window keeps moving.
      req.body.resume()
      if (body !== req.body) body.resume()
      await writeResponse(stream, outcome.response, exchange, shared, outcome.errorCode)
      finish()
      return
    }
    // An action that read the body replaced it (with a Content-Length); send that one.
    const sendBody = hasBody || req.body !== original
    await forwardToUpstream(stream, req, sendBody, state, outcome.upstream, endpoint, shared, exchange, policy, (a) => (abortUpstream = a))
    finish()
  } catch (err) {
    const e = err as Error & { code?: string }
    const code = (e.code?.startsWith('GW_ERR_') ? e.code : 'GW_ERR_UPSTREAM_FAILED') as ErrorCode
    if (stream.writable) respondError(stream, code, e.message)
    finish({ code, message: e.message })
  }
}

async function forwardToUpstream(
  stream: Stream,
  req: PolicyRequest,
  hasBody: boolean,
  state: PolicyState,
  first: UpstreamTarget | undefined,
  endpoint: EndpointRuntime,
  shared: HandlerShared,
  exchange: Exchange | undefined,
  policy: CompiledPolicy,
  onAbort: (abort: (err: Error) => void) => void,
): Promise<void> {
  const send = (origin: string, basePath: string): Promise<PolicyResponse> =>
    dispatchToResponse(shared.dispatcher, {
      origin,
      path: basePath + req.target,
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamHeaders(req.rawHeaders, endpoint),
      body: hasBody ? req.body : null,
    }, onAbort)
  if (exchange) exchange.timing.upstreamStartAt = now()
  let upstreamRes: PolicyResponse
  let target: UpstreamTarget | undefined
  try {
    if (first) {
      const sent = await sendWithRetry(first.pool, isIdempotentMethod(req.method) && !hasBody, (t) => send(t.origin, t.basePath), first)
      target = sent.target
      upstreamRes = sent.value
    } else {
      upstreamRes = await send(endpoint.upstream.origin, '')
    }
  } catch (err) {
    const poolDown = err instanceof UpstreamPoolDownError
    const code = poolDown ? 'GW_ERR_UPSTREAM_POOL_DOWN' : upstreamErrorCode(err as Error)
    const message = poolDown ? (err as Error).message : `${first?.origin ?? endpoint.upstream.origin}: ${(err as Error).message}`
    // The response phase sees the failure too (circuit-breaker counts it; a custom-response
    // rule may replace the error page).
    const failure: PolicyResponse = { status: 502, rawHeaders: [], body: Readable.from([]) }
    const res = await policy.onHttpResponse(req, failure, state)
    if (res === failure || res.body === failure.body) {
      if (poolDown) {
        const payload = Buffer.from(JSON.stringify({ error: { code, status: 502, message } }))
        await writeResponse(stream, { status: 502, rawHeaders: ['content-type', 'application/json; charset=utf-8', 'content-length', String(payload.length)], body: Readable.from([payload]) }, exchange, shared, code)
      } else respondError(stream, code as ErrorCode, message)
    } else {
      await writeResponse(stream, res, exchange, shared)
    }
    if (exchange) exchange.error = { code, message }
    return
  }
  try {
    const res = await policy.onHttpResponse(req, upstreamRes, state)
    await writeResponse(stream, res, exchange, shared)
    if (target) target.pool.release(target, 'ok')
  } catch (err) {
    if (target) target.pool.release(target, 'error')
    upstreamRes.body.destroy()
    if (stream.writable) stream.end(encodeJsonMessage(MessageType.ABORT, { code: 'GW_ERR_UPSTREAM_FAILED', message: (err as Error).message }))
    throw err
  }
}
