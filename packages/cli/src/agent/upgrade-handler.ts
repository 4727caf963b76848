/**
 * An upgraded connection (a WebSocket: a Vite dev server's hot reload, say) carried on
 * one stream. Node's own HTTP client makes the upstream request, because it hands back
 * the socket on 101 and an ordinary response otherwise; after a 101 both directions are
 * raw bytes, piped with backpressure.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import {
  GwError,
  sendFramedBody,
  writeJsonMessage,
  type MessageReader,
  MessageType,
  stripHopByHop,
  type RequestHead,
  type Stream,
} from '@gw/protocol'
import { now, startExchange } from './exchange.js'
import { respondError, upstreamHeaders, type EndpointRuntime, type HandlerShared } from './request-handler.js'
import { upstreamErrorCode } from './upstream-errors.js'
import { loopbackAwareLookup } from './upstream.js'
import { countWebSocketFrames } from './websocket-frames.js'

/** Where an upgrade goes when the request phase chose a pool target instead of the endpoint's upstream. */
export interface UpgradeTarget {
  origin: string
  hostname: string
  port: number
  tls: boolean
  /** Called once when the upgraded connection (or the refusal) is over. */
  done(ok: boolean): void
}

export function handleUpgrade(
  stream: Stream,
  reader: MessageReader,
  head: RequestHead,
  endpoint: EndpointRuntime,
  shared: HandlerShared,
  target?: UpgradeTarget,
): void {
  const upstream = target ?? endpoint.upstream
  const exchange = shared.events.listenerCount('exchange:start') > 0
    ? startExchange(shared.events, { id: shared.nextId(), tunnel: endpoint.name, head, websocket: true })
    : undefined
  if (exchange) exchange.timing.upstreamStartAt = now()
  let ended = false
  const end = (error?: { code: string; message: string }): void => {
    if (ended) return
    ended = true
    target?.done(error === undefined)
    if (!exchange) return
    exchange.timing.endAt = now()
    if (error) exchange.error = error
    shared.events.emit('exchange:end', exchange)
  }

  // upstreamHeaders drops hop-by-hop headers; an upgrade needs Connection and Upgrade back.
  const headers = upstreamHeaders(head.rawHeaders, endpoint)
  const upgrade = head.rawHeaders.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === 'upgrade')
  headers.push('Connection', 'Upgrade')
  if (upgrade !== -1) headers.push('Upgrade', head.rawHeaders[upgrade + 1]!)

  const request = (upstream.tls ? httpsRequest : httpRequest)({
    host: upstream.hostname,
    port: upstream.port,
    method: head.method,
    path: head.target,
    headers,
    setHost: false,
    lookup: loopbackAwareLookup as never,
    rejectUnauthorized: shared.tlsVerify,
    timeout: shared.responseTimeout,
  })

  request.on('upgrade', (res: IncomingMessage, socket: Socket, upgradeHead: Buffer) => {
    request.setTimeout(0)
    socket.setTimeout(0)
    writeJsonMessage(stream, MessageType.RESPONSE_HEAD, {
      status: 101,
      statusMessage: res.statusMessage,
      rawHeaders: stripHopByHop(res.rawHeaders, true),
    })
    if (exchange) {
      exchange.timing.upstreamHeadersAt = now()
      exchange.response = { status: 101, statusMessage: res.statusMessage ?? 'Switching Protocols', rawHeaders: res.rawHeaders }
      shared.events.emit('exchange:response', exchange)
      const ws = exchange.websocket!
      const countIn = countWebSocketFrames(true)
      const countOut = countWebSocketFrames(false)
      stream.on('data', (chunk: Buffer) => {
        exchange!.bytesIn += chunk.length
        ws.messagesIn += countIn(chunk)
      })
      socket.on('data', (chunk: Buffer) => {
        exchange!.bytesOut += chunk.length
        ws.messagesOut += countOut(chunk)
      })
    }
    if (upgradeHead.length > 0) stream.write(upgradeHead)
    const early = reader.detach()
    if (early.length > 0) socket.write(early)
    socket.on('error', () => {})
    stream.pipe(socket)
    socket.pipe(stream)
    stream.resume()
    const close = (): void => {
      socket.destroy()
      stream.destroy()
      end()
    }
    socket.once('close', close)
    stream.once('close', close)
  })

  request.on('response', (res: IncomingMessage) => {
    // The upstream answered without upgrading: an ordinary response.
    writeJsonMessage(stream, MessageType.RESPONSE_HEAD, {
      status: res.statusCode ?? 502,
      statusMessage: res.statusMessage,
      rawHeaders: stripHopByHop(res.rawHeaders),
    })
    reader.detach()
    sendFramedBody(res, stream, () => end())
  })

  request.on('timeout', () => {
    request.destroy(Object.assign(new GwError('GW_ERR_UPSTREAM_TIMEOUT', 'the upstream did not answer the upgrade in time'), { code: 'ETIMEDOUT' }))
  })
  request.on('error', (err) => {
    const code = upstreamErrorCode(err)
    const message = `${upstream.origin}: ${err.message}`
    respondError(stream, code, message)
    end({ code, message })
  })
  stream.once('close', () => request.destroy())
  request.end()
}
