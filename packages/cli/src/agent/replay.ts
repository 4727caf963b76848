/**
 * Replay: send a captured request again, straight from the agent to the upstream (the
 * relay and the public client are not involved), and report it on the event stream
 * like any other exchange, marked with the id it replays.
 */
import { removeRawHeaders, stripHopByHop } from '@gw/protocol'
import { now, startExchange } from './exchange.js'
import type { EndpointRuntime, HandlerShared } from './request-handler.js'
import { upstreamHeaders } from './request-handler.js'
import { upstreamErrorCode } from './upstream-errors.js'

const CONTENT_LENGTH = new Set(['content-length'])

export interface ReplayRequest {
  method: string
  target: string
  rawHeaders: string[]
  body: Buffer
}

export async function replayRequest(request: ReplayRequest, replayOf: string, endpoint: EndpointRuntime, shared: HandlerShared): Promise<void> {
  const { events } = shared
  const started = now()
  const exchange = startExchange(events, {
    id: shared.nextId(),
    tunnel: endpoint.name,
    replayOf,
    head: { ...request, httpVersion: '1.1', remoteAddress: '127.0.0.1', remotePort: 0, scheme: 'http', receivedAt: started },
  })
  exchange.timing.upstreamStartAt = started
  exchange.bytesIn = request.body.length
  if (request.body.length > 0) events.emit('exchange:request-body', exchange, request.body)
  // The captured Content-Length may not match an edited body; undici sets the right one.
  const headers = upstreamHeaders(removeRawHeaders(request.rawHeaders, CONTENT_LENGTH), endpoint)
  try {
    const response = await shared.dispatcher.request({
      origin: endpoint.upstream.origin,
      path: request.target,
      method: request.method as 'GET',
      headers,
      body: request.body.length > 0 || !['GET', 'HEAD'].includes(request.method) ? request.body : null,
    })
    exchange.timing.upstreamHeadersAt = now()
    const raw: string[] = []
    for (const [name, value] of Object.entries(response.headers)) {
      for (const v of Array.isArray(value) ? value : [value ?? '']) raw.push(name, v)
    }
    exchange.response = { status: response.statusCode, statusMessage: '', rawHeaders: stripHopByHop(raw) }
    events.emit('exchange:response', exchange)
    for await (const chunk of response.body) {
      exchange.bytesOut += (chunk as Buffer).length
      events.emit('exchange:response-body', exchange, chunk as Buffer)
    }
  } catch (err) {
    exchange.error = { code: upstreamErrorCode(err as Error), message: `${endpoint.upstream.origin}: ${(err as Error).message}` }
    throw err
  } finally {
    exchange.timing.endAt = now()
    events.emit('exchange:end', exchange)
  }
}
