/**
 * The request pipeline for an endpoint with a traffic policy:
 *
 *   on_http_request rules → upstream (default, or a pool the forward action chose) →
 *   on_http_response rules → back to the relay
 *
 * An endpoint without a policy never comes here (request-handler.ts streams straight
 * to the upstream), so a policy costs nothing until one is configured.
 */
import { Readable } from 'node:stream'
import {
  CodedError,
  ErrorCodes,
  type ErrorCode,
  sendFramedBody,
  writeJsonMessage,
  type BodyReadable,
  type MessageReader,
  encodeJsonMessage,
  MessageType,
  getRawHeader,
  removeRawHeaders,
  stripHopByHop,
  type RequestHead,
  type ResponseHead,
  ERROR_CODE_HEADER,
  type Stream,
} from '@gw/protocol'
import { createPolicyState } from '../policy/state.js'
import type { PolicyRequest, PolicyResponse } from '../policy/index.js'
import { isIdempotentMethod, sendWithRetry, type UpstreamTarget } from '../upstream/index.js'
import type { Exchange } from './events.js'
import { respondError, upstreamHeaders, type EndpointRuntime, type HandlerShared } from './request-handler.js'
import { upstreamErrorCode } from './upstream-errors.js'
import { bodyToStream, streamUpstreamResponse, type UpstreamCall } from './upstream-call.js'
import { dispatchForAnswer, type UpstreamAnswer } from './upstream-answer.js'
import { tapBody } from './body-tap.js'
import { now } from './exchange.js'
import { handleUpgrade } from './upgrade-handler.js'

const GW_ERROR_HEADER = new Set([ERROR_CODE_HEADER])
/** A body with nothing in it: cheaper than Readable.from, which makes an async iterator. */
function emptyBody(): Readable {
  return new Readable({
    read() {
      this.push(null)
    },
  })
}

export async function forwardWithPolicy(
  stream: Stream,
  /** Null when the request has no body (its END was already read). */
  body: BodyReadable | null,
  head: RequestHead,
  endpoint: EndpointRuntime,
  shared: HandlerShared,
  exchange: Exchange | undefined,
): Promise<void> {
  const policy = endpoint.policy!
  const req: PolicyRequest = {
    method: head.method,
    target: head.target,
    rawHeaders: head.rawHeaders.slice(),
    host: getRawHeader(head.rawHeaders, 'host') ?? '',
    scheme: head.scheme,
    clientIp: head.remoteAddress,
    clientPort: head.remotePort,
    body: !body ? emptyBody() : exchange ? tapBody(body, (chunk) => {
      exchange.bytesIn += chunk.length
      shared.events.emit('exchange:request-body', exchange, chunk)
    }) : body,
  }
  const originalBody = req.body
  let aborted = false
  stream.once('close', () => {
    aborted = true
  })

  let released: ((ok: boolean) => void) | undefined
  const finish = (error?: { code: string; message: string }): void => {
    released?.(error === undefined)
    released = undefined
    if (!exchange || exchange.timing.endAt !== undefined) return
    exchange.timing.endAt = now()
    if (error) exchange.error = error
    shared.events.emit('exchange:end', exchange)
  }

  const state = createPolicyState()
  try {
    const outcome = await policy.onHttpRequest(req, state)
    if (outcome.kind === 'respond') {
      // Read the unwanted body to its end, so the client's request completes and the
      // stream is freed; the bytes go nowhere.
      req.body.resume()
      if (exchange) exchange.verdict = outcome.verdict
      writeResponse(stream, outcome.response, outcome.errorCode, '', exchange, shared, finish)
      return
    }
    if (exchange) exchange.timing.upstreamStartAt = now()
    const hasBody = head.hasBody || req.body !== originalBody
    const callTo = (origin: string, basePath: string): UpstreamCall => ({
      origin,
      path: basePath + req.target,
      method: req.method,
      headers: upstreamHeaders(req.rawHeaders, endpoint),
      body: hasBody ? req.body : null,
    })
    const pool = outcome.upstream?.pool
    const retryable = isIdempotentMethod(req.method) && !hasBody

    // No response rules and no response hooks (a circuit breaker's): the answer streams
    // straight through, as without a policy (bench/README.md, F5).
    if (!policy.hasResponseRules && !state.responseHooks) {
      if (outcome.upstream && pool) {
        await sendWithRetry(pool, retryable, (t: UpstreamTarget) =>
          streamUpstreamResponse(stream, callTo(t.origin, t.basePath), shared, exchange, (error) => {
            pool.release(t, error ? 'error' : 'ok')
            finish(error)
          }), outcome.upstream)
      } else {
        await streamUpstreamResponse(stream, callTo(endpoint.upstream.origin, ''), shared, exchange, finish)
      }
      return
    }

    let response: UpstreamAnswer
    let origin = endpoint.upstream.origin
    if (outcome.upstream && pool) {
      const sent = await sendWithRetry(pool, retryable, (t: UpstreamTarget) =>
        dispatchForAnswer(shared.dispatcher, callTo(t.origin, t.basePath), () => aborted), outcome.upstream)
      response = sent.value
      origin = sent.target.origin
      released = (ok) => pool.release(sent.target, ok ? 'ok' : 'error')
    } else {
      response = await dispatchForAnswer(shared.dispatcher, callTo(origin, ''), () => aborted)
    }
    if (exchange) exchange.timing.upstreamHeadersAt = now()
    const final = await policy.onHttpResponse(req, response, state)
    // Rules that left the body alone: it streams from the upstream as without a policy.
    if (final === response && response.untouched) streamAnswer(stream, response, origin, exchange, shared, finish)
    else writeResponse(stream, final, undefined, response.statusMessage, exchange, shared, finish)
  } catch (err) {
    const e = err as Error & { code?: string; status?: number }
    // Policy errors carry their own code (GW_ERR_POLICY_…); upstream failures map to 502/504.
    const own = e instanceof CodedError
    const code = (own ? e.code : upstreamErrorCode(e)) as ErrorCode
    const message = own ? e.message : `${endpoint.upstream.origin}: ${e.message}`
    // The response phase sees an upstream failure as the response gw would send (502,
    // 504), so a circuit breaker counts it and a rule may answer in gw's place.
    const replaced = own ? undefined : await errorResponsePhase(policy, req, state, code)
    if (replaced) writeResponse(stream, replaced, undefined, '', exchange, shared, finish)
    else {
      respondError(stream, code, message)
      finish({ code, message })
    }
  }
}

/**
 * An upgrade request (WebSocket) through the request phase: auth, IP rules, deny, rate
 * limits and header actions run before anything reaches the upstream, as for any
 * request. A rule that answers ends it with an ordinary response; otherwise the upgrade
 * goes to the upstream with the request as the rules left it.
 */
export async function upgradeWithPolicy(
  stream: Stream,
  reader: MessageReader,
  head: RequestHead,
  endpoint: EndpointRuntime,
  shared: HandlerShared,
): Promise<void> {
  const policy = endpoint.policy!
  const req: PolicyRequest = {
    method: head.method,
    target: head.target,
    rawHeaders: head.rawHeaders.slice(),
    host: getRawHeader(head.rawHeaders, 'host') ?? '',
    scheme: head.scheme,
    clientIp: head.remoteAddress,
    clientPort: head.remotePort,
    // After an upgrade's head come raw bytes, not a body a rule could read.
    body: emptyBody(),
  }
  const state = createPolicyState()
  let outcome: Awaited<ReturnType<typeof policy.onHttpRequest>>
  try {
    outcome = await policy.onHttpRequest(req, state)
  } catch (err) {
    // Policy codes are the agent's, not the wire's: they travel as the head's errorCode.
    const e = err as Error & { status?: number }
    const code = e instanceof CodedError ? e.code : 'GW_ERR_POLICY_EXPRESSION'
    const status = e instanceof CodedError && typeof e.status === 'number' ? e.status : 500
    reader.detach()
    stream.resume()
    const body = Readable.from([Buffer.from(`${e.message}\n`)])
    writeResponse(stream, { status, rawHeaders: ['content-type', 'text/plain; charset=utf-8'], body }, code, '', undefined, shared, noop)
    return
  }
  if (outcome.kind === 'respond') {
    // The client's raw bytes after the head go nowhere; the relay closes after the answer.
    reader.detach()
    stream.resume()
    writeResponse(stream, outcome.response, outcome.errorCode, '', undefined, shared, noop)
    return
  }
  const rewritten: RequestHead = { ...head, method: req.method, target: req.target, rawHeaders: req.rawHeaders }
  const chosen = outcome.upstream
  if (!chosen) return handleUpgrade(stream, reader, rewritten, endpoint, shared)
  handleUpgrade(stream, reader, { ...rewritten, target: chosen.basePath + req.target }, endpoint, shared, {
    origin: chosen.origin,
    hostname: chosen.hostname,
    port: chosen.port,
    tls: chosen.origin.startsWith('https:'),
    done: (ok) => chosen.pool.release(chosen, ok ? 'ok' : 'error'),
  })
}

function noop(): void {}

async function errorResponsePhase(
  policy: NonNullable<EndpointRuntime['policy']>,
  req: PolicyRequest,
  state: ReturnType<typeof createPolicyState>,
  code: ErrorCode,
): Promise<PolicyResponse | undefined> {
  const stand: PolicyResponse = { status: ErrorCodes[code].status, rawHeaders: [], body: emptyBody() }
  try {
    const result = await policy.onHttpResponse(req, stand, state)
    return result === stand && result.status === stand.status && result.rawHeaders.length === 0 ? undefined : result
  } catch {
    return undefined
  }
}

function writeHead(
  stream: Stream,
  response: PolicyResponse,
  errorCode: string | undefined,
  statusMessage: string,
  exchange: Exchange | undefined,
  shared: HandlerShared,
): void {
  const rawHeaders = removeRawHeaders(stripHopByHop(response.rawHeaders), GW_ERROR_HEADER)
  const head: ResponseHead = { status: response.status, rawHeaders, ...(statusMessage ? { statusMessage } : {}), ...(errorCode ? { errorCode } : {}) }
  if (exchange) {
    exchange.response = { status: response.status, statusMessage, rawHeaders }
    shared.events.emit('exchange:response', exchange)
  }
  writeJsonMessage(stream, MessageType.RESPONSE_HEAD, head)
}

function writeResponse(
  stream: Stream,
  response: PolicyResponse,
  errorCode: string | undefined,
  statusMessage: string,
  exchange: Exchange | undefined,
  shared: HandlerShared,
  finish: (error?: { code: string; message: string }) => void,
): void {
  writeHead(stream, response, errorCode, statusMessage, exchange, shared)
  if (exchange) {
    response.body.on('data', (chunk: Buffer) => {
      exchange.bytesOut += chunk.length
      shared.events.emit('exchange:response-body', exchange, chunk)
    })
  }
  const body = response.body as Readable & { trailers?: string[] }
  sendFramedBody(body, stream, (err) => {
    if (err && stream.writable) {
      stream.end(encodeJsonMessage(MessageType.ABORT, { code: 'GW_ERR_UPSTREAM_FAILED', message: err.message }))
    }
    finish(err ? { code: 'GW_ERR_UPSTREAM_FAILED', message: err.message } : undefined)
  }, () => body.trailers ?? [])
}

/** The answer's head, then its body straight into the stream (see UpstreamAnswer). */
function streamAnswer(
  stream: Stream,
  answer: UpstreamAnswer,
  origin: string,
  exchange: Exchange | undefined,
  shared: HandlerShared,
  finish: (error?: { code: string; message: string }) => void,
): void {
  writeHead(stream, answer, undefined, answer.statusMessage, exchange, shared)
  answer.streamTo(bodyToStream(stream, exchange, shared, origin, answer, finish))
}
