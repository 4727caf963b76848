/**
 * The agent's one request pipeline, for every stream the relay opens, for replays and
 * for upgrades:
 *
 *   stream → head → RequestContext → normalise target → on_http_request → upstream
 *          → on_http_response → ResponseWriter
 *
 * An endpoint without a policy takes the fast path inside it: no policy request, no
 * Promise chain, and the upstream's answer streams from undici's handler into the
 * stream with no Readable in between (bench/README.md, F5). With a policy the same
 * steps run with the phases between them; response rules that leave the body alone
 * still stream it (F15).
 *
 * Who owns what: the context (request-context.ts) holds the request's state and its
 * body; request-target.ts normalises the target; the response writer
 * (response-writer.ts) is the only thing that writes to the stream; upstream/ makes the
 * calls; upgrade.ts carries a 101 onward.
 */
import { Readable, type Duplex } from 'node:stream'
import { CodedError, decodeJson, GwError, ERROR_CODE_HEADER, ErrorCodes, getRawHeader, isErrorCode, MessageReader, MessageType, checkRequestHead, type DecodedMessage, type ErrorCode, type RequestHead } from '@gw/protocol'
import { compilePolicy, createPolicyState, isIdentityHeader, setActionResult, terminateTlsResult, PolicyRuntimeError, type CompiledPolicy, type PolicyRequest, type PolicyResponse, type PolicyState } from '../policy/index.js'
import { callUpstream, isIdempotentMethod, sendWithRetry, upstreamErrorCode, type UpstreamAnswer, type UpstreamCall, type UpstreamTarget } from '../upstream/index.js'
import { Recorder } from './recorder.js'
import { RequestContext, type AgentRuntime, type EndpointRuntime, type RequestOrigin } from './request-context.js'
import { normaliseTarget } from './request-target.js'
import type { ErrorReport } from './response-writer.js'
import { ResponseWriter } from './response-writer.js'
import { forwardRemoteUpgrade, forwardUpgrade, refuseUpgrade } from './upgrade.js'
import { serveTcpStream } from './tcp-forward.js'

export interface ServeOptions {
  /** The endpoint, when the caller knows it (a replay); otherwise the head's tunnel names it. */
  endpoint?: EndpointRuntime
  /** Marks the exchange as a replay of this id. */
  replayOf?: string
  /** Send straight to the endpoint's upstream (a replay repeats what the upstream got). */
  skipPolicy?: boolean
  /** For the agent's own requests to an internal endpoint (http-request): how many deep this one is. */
  internalHops?: number
  /** Runs once when the response is over, with the failure that ended it, if any. */
  onFinish?: (error: ErrorReport | undefined) => void
}

/** Serve one stream from the relay (or a replay's stand-in stream). */
export function serveStream(stream: Duplex, runtime: AgentRuntime, options: ServeOptions = {}): void {
  stream.on('error', noop) // a reset stream is an aborted request; the context sees its close
  const reader = new MessageReader(stream, { maxMessageSize: runtime.maxHeadSize })
  reader.nextMessage((err: Error | null, message: DecodedMessage | null) => {
    let head: RequestHead
    // A connection to a tcp or tls endpoint: raw bytes after its head (tcp-forward.ts).
    if (!err && message?.type === MessageType.TCP_HEAD && !options.endpoint) return serveTcpStream(stream, reader, message.payload, runtime)
    try {
      if (err || !message || message.type !== MessageType.REQUEST_HEAD) throw err ?? new Error('no request head')
      head = checkRequestHead(decodeJson(message.payload, 'request head'))
    } catch {
      stream.destroy()
      options.onFinish?.({ code: 'GW_ERR_MESSAGE_MALFORMED', message: 'the stream did not open with a request head' })
      return
    }
    serve(stream, reader, head, runtime, options)
  })
}

function serve(stream: Duplex, reader: MessageReader, head: RequestHead, runtime: AgentRuntime, options: ServeOptions): void {
  const endpoint = options.endpoint ?? runtime.endpoint(head.tunnel)
  if (!endpoint) {
    reader.bodyTo(DISCARD).resume()
    new ResponseWriter(stream, undefined, undefined, options.onFinish).error('GW_ERR_TUNNEL_NOT_FOUND', `this agent serves no tunnel named ${head.tunnel}`)
    return
  }
  const recorder = runtime.record
    ? new Recorder(runtime.events, { id: (!options.replayOf && head.requestId) || runtime.nextId(), tunnel: endpoint.name, head, ...(options.replayOf ? { replayOf: options.replayOf } : {}), websocket: head.upgrade })
    : undefined
  const ctx = new RequestContext(stream, reader, head, endpoint, runtime, recorder, options.onFinish)
  // Most requests have no body: read the END that closes it, with no Readable to build.
  if (!head.hasBody && !head.upgrade) reader.bodyTo(DISCARD).resume()
  try {
    // An https endpoint with terminate-tls: only a request the relay says came through it (a replay repeats one that did).
    if (endpoint.terminateTls && !options.skipPolicy && head.tls?.terminateTls !== endpoint.terminateTls.digest) {
      throw new GwError('GW_ERR_MISDIRECTED_REQUEST', `this endpoint runs terminate-tls (a client certificate, TLS versions), and the relay did not run it on this request's connection (${head.scheme === 'https' ? 'another relay of a cluster, or a connection made for another name' : 'plain HTTP'}); connect over HTTPS to the relay that holds the endpoint`)
    }
    ctx.target = normaliseTarget(head.target, ctx.host)
    if (head.upgrade) refuseUpgrade(head)
  } catch (err) {
    return refuse(ctx, err)
  }
  const policy = options.skipPolicy ? undefined : endpoint.policy
  if (!policy || policy.empty) {
    if (head.upgrade) return forwardUpgrade(ctx, endpoint.upstream, ctx.target, ctx.upstreamHeaders(head.rawHeaders))
    return forward(ctx, ctx.callHeaders(head.rawHeaders))
  }
  // A request another agent sent here through the relay carries its hops (loop protection across agents).
  runPolicy(ctx, policy, options.internalHops ?? head.hops ?? 0).catch((err: unknown) => ctx.writer.fail(err))
}

/** The request phase refused the request (or the target was invalid): answer, drop the body. */
function refuse(ctx: RequestContext, err: unknown): void {
  ctx.discardBody(null)
  ctx.writer.fail(err)
}

/** The fast path: no policy. One call, its answer streamed from inside undici's handler. */
function forward(ctx: RequestContext, headers: string[]): void {
  const { origin } = ctx.endpoint.upstream
  ctx.recorder?.upstreamStart()
  const call = callUpstream(ctx.endpoint.dispatcher, { origin, path: ctx.target, method: ctx.head.method, headers, body: ctx.requestBody() }, (answer) => streamAnswer(ctx, answer, origin))
  ctx.call = call
  call.answer.then(undefined, (err: Error) => ctx.writer.fail(err, origin))
}

/** The upstream's head, then its body straight into the stream. */
function streamAnswer(ctx: RequestContext, answer: UpstreamAnswer, origin: string): void {
  ctx.recorder?.upstreamHead()
  ctx.writer.head(answer.status, answer.statusMessage, answer.rawHeaders, remoteErrorCode(ctx, answer.rawHeaders))
  answer.streamTo(ctx.writer.sink(answer, origin))
}

/** A response the policy made or rewrote, its body from a Readable. */
function writePolicyResponse(ctx: RequestContext, response: PolicyResponse, origin: string, statusMessage = ''): void {
  if (response.close) {
    response.body.resume()
    return ctx.writer.closeConnection()
  }
  ctx.writer.head(response.status, statusMessage, response.rawHeaders, response.errorCode ?? remoteErrorCode(ctx, response.rawHeaders))
  ctx.writer.send(response.body, origin)
}

/** An error thrown inside a phase: gw's own errors keep their code, anything else is an action's failure. */
function phaseFailure(err: unknown): CodedError {
  if (err instanceof CodedError) return err
  return new PolicyRuntimeError('GW_ERR_POLICY_ACTION_FAILED', `a policy action failed: ${(err as Error)?.message ?? String(err)}`, { cause: err })
}

/**
 * An endpoint a forward-internal passed the request on from: its response phase runs on
 * the internal endpoint's answer, innermost first, before the answer goes back.
 */
interface OuterHop {
  policy: CompiledPolicy
  state: PolicyState
}

/** forward-internal hops one request may take before it is a loop. */
const MAX_INTERNAL_HOPS = 8

let emptyPolicy: CompiledPolicy | undefined

/** Requests the agent makes to its own internal endpoints (http-request) that one request may chain: ngrok's loop protection. */
const MAX_INTERNAL_REQUESTS = 3

async function runPolicy(ctx: RequestContext, policy: CompiledPolicy, internalHops: number): Promise<void> {
  const { head } = ctx
  const body = ctx.requestBody()
  const req: PolicyRequest = {
    method: head.method,
    target: ctx.target,
    // Headers the policy sets to tell the upstream who the user is: a client's copies are forged.
    rawHeaders: withoutIdentityHeaders(head.rawHeaders),
    host: ctx.host,
    scheme: head.scheme,
    clientIp: head.remoteAddress,
    clientPort: head.remotePort,
    receivedAt: head.receivedAt,
    ...(head.tls ? { tls: head.tls } : {}),
    body: body ?? emptyBody(),
  }
  return runPhases(ctx, policy, req, req.body, [], internalHops)
}

/** Run the outer endpoints' response phases on an answer, innermost first. */
async function throughOuter(outer: readonly OuterHop[], req: PolicyRequest, response: PolicyResponse): Promise<PolicyResponse> {
  for (let i = outer.length - 1; i >= 0; i--) response = await outer[i]!.policy.onHttpResponse(req, response, outer[i]!.state)
  return response
}

/** One endpoint's phases and upstream; a forward-internal goes on to the internal endpoint's, with this one in `outer`. */
async function runPhases(ctx: RequestContext, policy: CompiledPolicy, req: PolicyRequest, originalBody: Readable, outer: OuterHop[], internalHops: number): Promise<void> {
  const { head, endpoint } = ctx
  const state = createPolicyState()
  // The relay ran the endpoint's terminate-tls on the connection: its results, as ngrok's action sets them.
  if (endpoint.terminateTls) setActionResult(state, 'ngrok', 'terminate_tls', terminateTlsResult(req))
  const { internalEndpoint, internalRequest } = ctx.runtime
  if (internalEndpoint) state.internalEndpoint = (host) => internalEndpoint(host) !== undefined
  if (internalRequest) {
    state.internalRequest = (host, call, maxBody, signal) => {
      if (internalHops >= MAX_INTERNAL_REQUESTS) {
        return Promise.reject(new PolicyRuntimeError('GW_ERR_POLICY_FORWARD_LOOP', `http-request: ${MAX_INTERNAL_REQUESTS} internal requests in a chain; the internal endpoints call each other in a circle`))
      }
      return internalRequest(host, { ...call, clientIp: req.clientIp }, internalHops + 1, maxBody, signal)
    }
  }

  let outcome
  try {
    outcome = await policy.onHttpRequest(req, state)
  } catch (err) {
    return refuse(ctx, phaseFailure(err))
  }
  if (outcome.kind === 'respond') {
    ctx.discardBody(req.body)
    ctx.recorder?.verdict(outcome.verdict)
    if (outcome.errorCode) outcome.response.errorCode = outcome.errorCode
    let response = outcome.response
    if (outer.length > 0 && !response.close) {
      try {
        response = await throughOuter(outer, req, response)
      } catch (err) {
        return ctx.writer.fail(phaseFailure(err))
      }
    }
    return writePolicyResponse(ctx, response, endpoint.upstream.origin)
  }
  if (ctx.writer.done) return // the client went away while the phase ran
  if (outcome.kind === 'internal') {
    // Hops taken before this agent (another agent sent the request here through the relay) count too.
    const hops = (head.hops ?? 0) + outer.length + 1
    const next = internalEndpoint?.(outcome.host, { ...originOf(head), hops })
    if (!next) return refuse(ctx, new PolicyRuntimeError('GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND', `forward-internal: no endpoint of this agent, and none of its authtoken on the relay, is ${outcome.host}`))
    if (hops >= MAX_INTERNAL_HOPS) {
      return refuse(ctx, new PolicyRuntimeError('GW_ERR_POLICY_FORWARD_LOOP', `forward-internal went through ${MAX_INTERNAL_HOPS} endpoints (the last ${outcome.host}); the internal endpoints forward in a circle`))
    }
    ctx.endpoint = next
    emptyPolicy ??= compilePolicy({})
    return runPhases(ctx, next.policy ?? emptyPolicy, req, originalBody, [...outer, { policy, state }], internalHops)
  }

  const chosen = outcome.upstream
  const origin = chosen?.origin ?? endpoint.upstream.origin
  const remote = ctx.endpoint.remote
  if (head.upgrade && remote) {
    // The other agent reads it as the relay's upgrade: the Upgrade and Connection it names go along.
    const upgrade = ['connection', 'Upgrade', 'upgrade', getRawHeader(head.rawHeaders, 'upgrade') ?? 'websocket']
    return forwardRemoteUpgrade(ctx, () => remote.openUpgrade(req.method, req.target, [...ctx.upstreamHeaders(req.rawHeaders), ...upgrade]))
  }
  if (head.upgrade) {
    const target = chosen ?? endpoint.upstream
    if (chosen) ctx.release = (ok) => chosen.pool.release(chosen, ok ? 'ok' : 'error')
    return forwardUpgrade(ctx, target, (chosen?.basePath ?? '') + req.target, ctx.upstreamHeaders(req.rawHeaders))
  }
  ctx.recorder?.upstreamStart()
  const hasBody = head.hasBody || req.body !== originalBody
  const callTo = (targetOrigin: string, basePath: string): UpstreamCall => ({
    origin: targetOrigin,
    path: basePath + req.target,
    method: req.method,
    headers: ctx.callHeaders(req.rawHeaders),
    body: hasBody ? req.body : null,
  })
  // No response rules and no response hooks (a circuit breaker's): the answer streams
  // straight through, as without a policy.
  const streamed = !policy.hasResponseRules && !state.responseHooks && outer.every((o) => !o.policy.hasResponseRules && !o.state.responseHooks)
  let answer: UpstreamAnswer
  let answeredBy = origin
  try {
    if (chosen) {
      const pool = chosen.pool
      const sent = await sendWithRetry(pool, isIdempotentMethod(req.method) && !hasBody, (t: UpstreamTarget) => {
        const call = callUpstream(ctx.endpoint.dispatcher, callTo(t.origin, t.basePath), streamed
          ? (a) => {
              ctx.release = (ok) => pool.release(t, ok ? 'ok' : 'error')
              streamAnswer(ctx, a, t.origin)
            }
          : undefined)
        ctx.call = call
        return call.answer
      }, chosen)
      answer = sent.value
      answeredBy = sent.target.origin
      if (!streamed) ctx.release = (ok) => pool.release(sent.target, ok ? 'ok' : 'error')
    } else {
      const call = callUpstream(ctx.endpoint.dispatcher, callTo(origin, ''), streamed ? (a) => streamAnswer(ctx, a, origin) : undefined)
      ctx.call = call
      answer = await call.answer
    }
  } catch (err) {
    return upstreamFailed(ctx, policy, req, state, err as Error, origin, outer)
  }
  if (streamed) return
  ctx.recorder?.upstreamHead()
  let final: PolicyResponse
  try {
    final = await throughOuter(outer, req, await policy.onHttpResponse(req, answer, state))
  } catch (err) {
    answer.abort(err as Error)
    return ctx.writer.fail(phaseFailure(err))
  }
  // Rules that left the body alone: it streams from the upstream as without a policy.
  if (final === answer && answer.untouched) {
    ctx.writer.head(answer.status, answer.statusMessage, answer.rawHeaders, remoteErrorCode(ctx, answer.rawHeaders))
    answer.streamTo(ctx.writer.sink(answer, answeredBy))
  } else {
    writePolicyResponse(ctx, final, answeredBy, final === answer ? answer.statusMessage : '')
  }
}

/**
 * The upstream failed before its head. The response phase sees the failure as the
 * response gw would send (502, 504), so a circuit breaker counts it and a rule may
 * answer in gw's place; otherwise the client gets gw's error page.
 */
async function upstreamFailed(ctx: RequestContext, policy: CompiledPolicy, req: PolicyRequest, state: PolicyState, err: Error, origin: string, outer: readonly OuterHop[]): Promise<void> {
  if (err instanceof CodedError && !isErrorCode(err.code)) return ctx.writer.fail(err)
  const code: ErrorCode = err instanceof CodedError ? (err.code as ErrorCode) : upstreamErrorCode(err)
  const stand: PolicyResponse = { status: ErrorCodes[code].status, rawHeaders: [], body: emptyBody() }
  let replaced: PolicyResponse | undefined
  try {
    const result = await throughOuter(outer, req, await policy.onHttpResponse(req, stand, state))
    if (result !== stand || result.status !== stand.status || result.rawHeaders.length > 0) replaced = result
  } catch {
    replaced = undefined
  }
  if (replaced) return writePolicyResponse(ctx, replaced, origin)
  ctx.writer.fail(err, origin)
}

/**
 * The gw error another agent's internal endpoint answered with (its deny, its loop
 * limit), which remote-internal.ts carries as `gw-error-code`: kept for the client. From
 * any other upstream the header is dropped (only gw names an error).
 */
function remoteErrorCode(ctx: RequestContext, rawHeaders: string[]): string | undefined {
  return ctx.endpoint.remote ? getRawHeader(rawHeaders, ERROR_CODE_HEADER) : undefined
}

/** Who the client is, for another agent's internal endpoint (remote-internal.ts). */
function originOf(head: RequestHead): RequestOrigin {
  return { remoteAddress: head.remoteAddress, remotePort: head.remotePort, scheme: head.scheme, receivedAt: head.receivedAt, httpVersion: head.httpVersion, ...(head.tls ? { tls: head.tls } : {}) }
}

function withoutIdentityHeaders(rawHeaders: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!isIdentityHeader(rawHeaders[i]!)) out.push(rawHeaders[i]!, rawHeaders[i + 1]!)
  }
  return out
}

/** A body with nothing in it: cheaper than Readable.from, which makes an async iterator. */
function emptyBody(): Readable {
  return new Readable({
    read() {
      this.push(null)
    },
  })
}

const DISCARD = { data: () => true, end: noop, error: noop }

function noop(): void {}
