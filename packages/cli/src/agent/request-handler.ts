/**
 * The agent's pipeline for one stream from the relay:
 *
 *   stream → request head → policy on_http_request → upstream → on_http_response → back
 *
 * The upstream call uses undici's dispatch with a handler, which hands over the raw
 * response headers (order, case and duplicates kept) and lets the yamux window pace the
 * upstream socket: when the stream cannot take more, the handler returns false and the
 * upstream read pauses until the stream drains.
 */
import type { Dispatcher } from 'undici'
import {
  type ErrorCode,
  DISCARD_BODY,
  MessageReader,
  type BodyReadable,
  encodeJsonMessage,
  encodeMessageHeader,
  MessageType,
  checkRequestHead,
  removeRawHeaders,
  stripHopByHop,
  type RequestHead,
  type ResponseHead,
  type Stream,
} from '@gw/protocol'
import type { AgentEvents, Exchange } from './events.js'
import type { Upstream } from './upstream.js'
import { upstreamErrorCode } from './upstream-errors.js'
import { handleUpgrade } from './upgrade-handler.js'
import { describeUpstreamError, streamUpstreamResponse } from './upstream-call.js'
import { now, startExchange } from './exchange.js'
import { forwardWithPolicy, upgradeWithPolicy } from './policy-pipeline.js'
import { tapBody } from './body-tap.js'
import type { Readable } from 'node:stream'
import type { CompiledPolicy } from '../policy/index.js'

export interface EndpointRuntime {
  /** Agent-side name (`command_line`, or the config file's name). */
  name: string
  publicName: string
  upstream: Upstream
  /** `rewrite` sets Host to the upstream's; any other value replaces Host with it. */
  hostHeader: string | undefined
  inspect: boolean
  /** The endpoint's traffic policy; undefined (or empty) skips the engine entirely. */
  policy: CompiledPolicy | undefined
}

export interface HandlerShared {
  dispatcher: Dispatcher
  events: AgentEvents
  maxHeadSize: number
  responseTimeout: number
  tlsVerify: boolean
  endpoint(publicName: string): EndpointRuntime | undefined
  nextId(): string
}

/** The relay already answered Expect: 100-continue; undici refuses the header anyway. */
const AGENT_DROPPED = new Set(['expect'])

export async function handleStream(stream: Stream, shared: HandlerShared): Promise<void> {
  stream.on('error', () => {}) // a reset stream is an aborted request; handled below
  const reader = new MessageReader(stream, { maxMessageSize: shared.maxHeadSize })
  let head: RequestHead
  try {
    head = await reader.nextJson(MessageType.REQUEST_HEAD, 'request head', checkRequestHead)
  } catch {
    stream.destroy()
    return
  }
  const endpoint = shared.endpoint(head.tunnel)
  if (!endpoint) {
    respondError(stream, 'GW_ERR_TUNNEL_NOT_FOUND', `this agent serves no tunnel named ${head.tunnel}`)
    return
  }
  if (head.upgrade) {
    // h2c would turn the connection into HTTP/2 frames that no later rule could see.
    if (isH2cUpgrade(head.rawHeaders)) {
      respondError(stream, 'GW_ERR_BAD_REQUEST', 'Upgrade: h2c is not supported through gw; speak HTTP/2 over TLS to the relay instead')
      return
    }
    // An upgrade is a request like any other until its 101: the request phase runs first.
    if (endpoint.policy && !endpoint.policy.empty) await upgradeWithPolicy(stream, reader, head, endpoint, shared)
    else handleUpgrade(stream, reader, head, endpoint, shared)
    return
  }
  const exchange = shared.events.listenerCount('exchange:start') > 0
    ? startExchange(shared.events, { id: shared.nextId(), tunnel: endpoint.name, head })
    : undefined
  if (head.expectContinue) stream.write(encodeMessageHeader(MessageType.CONTINUE, 0))
  const body = head.hasBody ? requestBody(reader) : discardEmptyBody(reader)
  if (endpoint.policy && !endpoint.policy.empty) {
    await forwardWithPolicy(stream, body, head, endpoint, shared, exchange)
    return
  }
  forward(stream, body, head, endpoint, shared, exchange)
}

function isH2cUpgrade(rawHeaders: string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'upgrade' && /(^|[\s,])h2c($|[\s,])/i.test(rawHeaders[i + 1]!)) return true
  }
  return false
}

/** Most requests have no body: read the END that closes it, with no Readable to build. */
function discardEmptyBody(reader: MessageReader): null {
  reader.bodyTo(DISCARD_BODY).resume()
  return null
}

function requestBody(reader: MessageReader): BodyReadable {
  const body = reader.body()
  // A body can fail with nobody reading it (a policy answered first, the link died):
  // its error is reported through the stream, so it must not become an uncaught one.
  body.on('error', noop)
  return body
}

function noop(): void {}

export function upstreamHeaders(rawHeaders: string[], endpoint: EndpointRuntime): string[] {
  const headers = removeRawHeaders(stripHopByHop(rawHeaders), AGENT_DROPPED)
  if (endpoint.hostHeader) {
    const host = endpoint.hostHeader === 'rewrite' ? endpoint.upstream.url.host : endpoint.hostHeader
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() === 'host') headers[i + 1] = host
    }
  }
  return headers
}


/** Answer with a gw error page; the relay renders it and sets `gw-error-code`. */
export function respondError(stream: Stream, code: ErrorCode, message: string): void {
  if (!stream.writable) return
  const head: ResponseHead = { status: 502, rawHeaders: [], error: { code, message } }
  stream.write(encodeJsonMessage(MessageType.RESPONSE_HEAD, head))
  stream.end(encodeMessageHeader(MessageType.END, 0))
}

function forward(
  stream: Stream,
  body: BodyReadable | null,
  head: RequestHead,
  endpoint: EndpointRuntime,
  shared: HandlerShared,
  exchange: Exchange | undefined,
): void {
  const { events } = shared
  let requestBody: Readable | null = null
  if (body) {
    requestBody = exchange ? tapBody(body, (chunk) => {
      exchange.bytesIn += chunk.length
      events.emit('exchange:request-body', exchange, chunk)
    }) : body
  }
  if (exchange) exchange.timing.upstreamStartAt = now()
  const finish = (error?: { code: string; message: string }): void => {
    if (!exchange) return
    exchange.timing.endAt = now()
    if (error) exchange.error = error
    events.emit('exchange:end', exchange)
  }
  const call = {
    origin: endpoint.upstream.origin,
    path: head.target,
    method: head.method,
    headers: upstreamHeaders(head.rawHeaders, endpoint),
    body: requestBody,
  }
  streamUpstreamResponse(stream, call, shared, exchange, finish).catch((err: Error) => {
    const code = upstreamErrorCode(err)
    const message = `${call.origin}: ${describeUpstreamError(err)}`
    respondError(stream, code, message)
    finish({ code, message })
  })
}
