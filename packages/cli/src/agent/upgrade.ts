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
import { getRawHeader, GwError, type RequestHead } from '@gw/protocol'
import { callUpgrade } from '../upstream/index.js'
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
      const ws = recorder?.exchange.websocket
      if (recorder && ws) {
        const countIn = countWebSocketFrames(true)
        const countOut = countWebSocketFrames(false)
        stream.on('data', (chunk: Buffer) => {
          recorder.exchange.bytesIn += chunk.length
          ws.messagesIn += countIn(chunk)
        })
        socket.on('data', (chunk: Buffer) => {
          recorder.exchange.bytesOut += chunk.length
          ws.messagesOut += countOut(chunk)
        })
      }
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
