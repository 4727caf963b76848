/**
 * An upgrade request (a WebSocket) after its request phase: the upstream leg is
 * upstream/upgrade.ts; this carries the answer back. A 101 turns the stream into raw
 * bytes both ways, piped with backpressure; any other answer is an ordinary response.
 *
 * Upgrades pass the same pipeline as every request (normalised target, identity
 * headers stripped, on_http_request) before anything reaches the upstream. `h2c` is
 * refused: after its 101 the connection would carry HTTP/2 requests that no policy
 * sees.
 */
import type { Duplex } from 'node:stream'
import { CodedError, getRawHeader, GwError, MessageReader, type RequestHead, type Stream } from '@gw/protocol'
import { callUpgrade } from '../upstream/index.js'
import { readResponseHead } from './read-response-head.js'
import type { RequestContext } from './request-context.js'
import { countWebSocketFrames } from './websocket-frames.js'

/** Throws GwError(GW_ERR_BAD_REQUEST) for an upgrade gw does not carry. */
export function refuseUpgrade(head: RequestHead): void {
  // The relay refuses these too; an upgrade's body would reach the upstream as raw bytes
  // after the head, and an upstream that declines the upgrade would parse them as the
  // next request on its connection, one the policy never saw.
  if (head.hasBody) throw new GwError('GW_ERR_BAD_REQUEST', 'an upgrade request may not carry a body (Content-Length or Transfer-Encoding)')
  const protocols = (getRawHeader(head.rawHeaders, 'upgrade') ?? '').toLowerCase().split(',').map((p) => p.trim())
  if (protocols.some((p) => p === 'h2c' || p.startsWith('h2c/') || p === 'http/2' || p.startsWith('http/2.'))) {
    throw new GwError('GW_ERR_BAD_REQUEST', 'Upgrade: h2c is not carried through gw: after the switch, requests on the connection would bypass the traffic policy; use HTTP/1.1 or HTTP/2 over TLS')
  }
}

export function forwardUpgrade(ctx: RequestContext, target: { origin: string; hostname: string; port: number }, path: string, headers: string[]): void {
  const { stream, writer, recorder } = ctx
  recorder?.upstreamStart()
  const request = callUpgrade({
    origin: target.origin,
    hostname: target.hostname,
    port: target.port,
    method: ctx.head.method,
    path,
    headers,
    upgrade: getRawHeader(ctx.head.rawHeaders, 'upgrade') ?? 'websocket',
    tlsVerify: ctx.runtime.tlsVerify,
    timeout: ctx.runtime.responseTimeout,
  }, {
    upgraded(res, socket, upgradeHead) {
      recorder?.upstreamHead()
      writer.head(101, res.statusMessage, res.rawHeaders, undefined, true)
      countTraffic(ctx, socket)
      if (upgradeHead.length > 0) stream.write(upgradeHead)
      const early = ctx.detach()
      if (early.length > 0) socket.write(early)
      socket.on('error', () => {})
      stream.pipe(socket)
      socket.pipe(stream)
      stream.resume()
      // An upstream that ended cleanly may still have bytes queued in the stream behind
      // the window: pipe() ends the stream after them, and destroying it here would reset
      // it and drop them. Only a broken upstream socket resets the stream.
      socket.once('close', (hadError: boolean) => {
        if (hadError || !stream.writableEnded) stream.destroy()
        writer.finish(undefined)
      })
      stream.once('close', () => {
        socket.destroy()
        writer.finish(undefined)
      })
    },
    answered(res) {
      // The upstream answered without upgrading: an ordinary response, then the end.
      recorder?.upstreamHead()
      ctx.discardBody(null)
      writer.head(res.statusCode ?? 502, res.statusMessage, res.rawHeaders)
      writer.send(res, target.origin)
    },
    failed(err) {
      writer.fail(err, target.origin)
    },
  })
  ctx.call = { abort: (err) => request.destroy(err) }
}

/** The inspector's byte and WebSocket message counts of an upgraded exchange. */
function countTraffic(ctx: RequestContext, upstream: Duplex): void {
  const { stream, recorder } = ctx
  const ws = recorder?.exchange.websocket
  if (!recorder || !ws) return
  const countIn = countWebSocketFrames(true)
  const countOut = countWebSocketFrames(false)
  stream.on('data', (chunk: Buffer) => {
    recorder.exchange.bytesIn += chunk.length
    ws.messagesIn += countIn(chunk)
  })
  upstream.on('data', (chunk: Buffer) => {
    recorder.exchange.bytesOut += chunk.length
    ws.messagesOut += countOut(chunk)
  })
}

/**
 * An upgrade to another agent's internal endpoint, through the relay: that agent's answer
 * comes as a framed response head (read as the relay reads an agent's, relay-upgrade.ts),
 * then raw bytes both ways after a 101; any other answer is an ordinary response.
 */
export function forwardRemoteUpgrade(ctx: RequestContext, open: () => Stream): void {
  const { stream, writer, recorder } = ctx
  recorder?.upstreamStart()
  let remote: Stream
  try {
    remote = open()
  } catch (err) {
    return writer.fail(err)
  }
  remote.on('error', () => {})
  ctx.call = { abort: (err) => remote.destroy(err) }
  const reader = new MessageReader(remote, { maxMessageSize: ctx.runtime.maxHeadSize })
  const fail = (err: Error): void => {
    remote.destroy()
    writer.fail(err)
  }
  const timer = setTimeout(() => fail(new GwError('GW_ERR_UPSTREAM_TIMEOUT', 'the internal endpoint did not answer the upgrade in time')), ctx.runtime.responseTimeout)
  readResponseHead(reader, () => new GwError('GW_ERR_UPSTREAM_FAILED', 'the other agent ended the stream without a response'), (err, response) => {
    clearTimeout(timer)
    if (err) return fail(err)
    if (response.error) return fail(new CodedError(response.error.code, response.status, response.error.message))
    recorder?.upstreamHead()
    if (response.status === 101) {
      writer.head(101, response.statusMessage, response.rawHeaders, undefined, true)
      countTraffic(ctx, remote)
      const rest = reader.detach()
      if (rest.length > 0) stream.write(rest)
      const early = ctx.detach()
      if (early.length > 0) remote.write(early)
      stream.pipe(remote)
      remote.pipe(stream)
      stream.resume()
      remote.resume()
      remote.once('close', () => {
        if (!stream.writableEnded) stream.end()
        writer.finish(undefined)
      })
      stream.once('close', () => {
        remote.destroy()
        writer.finish(undefined)
      })
      return
    }
    ctx.discardBody(null)
    writer.head(response.status, response.statusMessage, response.rawHeaders, response.errorCode)
    writer.send(reader.body(), ctx.endpoint.name)
  })
}
