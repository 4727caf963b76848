/**
 * The agent's side of a tcp or tls endpoint: one stream per client connection.
 *
 *   stream → TCP_HEAD → on_tcp_connect → dial the upstream → raw bytes both ways
 *
 * The bytes are never looked at: for a tls endpoint the upstream holds the certificate
 * and the handshake passes through. Ends map one to one, as at the relay
 * (packages/relay/src/relay-tcp.ts): the client's FIN half-closes the upstream, the
 * upstream's FIN half-closes the client, and a reset or a refused dial resets the
 * stream, which the relay turns into a reset of the client's connection.
 *
 * A forward-internal in on_tcp_connect hands the connection to a tcp or tls internal
 * endpoint (`tcp://camera.internal:22`): this agent's own (its on_tcp_connect runs, then
 * its upstream is dialled), else another agent's of the token through the relay
 * (tcp-internal.ts). With none online the connection is closed and the agent logs why.
 */
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { checkTcpHead, decodeJson, type MessageReader, type TcpHead } from '@gw/protocol'
import { loopbackAwareLookup } from '../upstream/index.js'
import type { TcpConnection } from './events.js'
import type { AgentRuntime, EndpointRuntime } from './request-context.js'
import { spliceToRemoteInternal } from './tcp-internal.js'
import { terminateTls } from './tcp-tls.js'
import { runTcpConnect } from './tcp-policy.js'

/** A dial that has not connected by then fails, ms. */
const CONNECT_TIMEOUT_MS = 10_000
/** forward-internal hops one connection may take (internal endpoints forwarding on), across agents too. */
export const MAX_TCP_INTERNAL_HOPS = 8

type Log = (level: 'debug' | 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void

export function serveTcpStream(stream: Duplex, reader: MessageReader, payload: Buffer, runtime: AgentRuntime): void {
  let head: TcpHead
  try {
    head = checkTcpHead(decodeJson(payload, 'tcp head'))
  } catch {
    return void stream.destroy()
  }
  const endpoint = runtime.endpoint(head.tunnel)
  if (!endpoint || endpoint.proto !== head.proto) return void stream.destroy()
  // Bytes that came in the frame with the head; the rest waits in the paused stream.
  const early = reader.detach()
  connectTcp(stream, early, head, endpoint, runtime, head.hops ?? 0)
}

/** on_tcp_connect of `endpoint`, then its upstream, or the internal endpoint its forward-internal names. */
function connectTcp(stream: Duplex, early: Buffer, head: TcpHead, endpoint: EndpointRuntime, runtime: AgentRuntime, hops: number): void {
  const log: Log = (level, msg, fields) => {
    runtime.events.emit('log', { level, msg, fields: { endpoint: endpoint.name, client: `${head.remoteAddress}:${head.remotePort}`, ...fields } })
  }
  const go = (stream: Duplex, early: Buffer): void => {
    if (stream.destroyed) return
    // Counted for the metrics (conns, bytes) only when someone listens.
    const events = runtime.events
    let conn: TcpConnection | undefined
    if (events.listenerCount('conn:start') > 0 || events.listenerCount('conn:end') > 0) {
      const c: TcpConnection = { tunnel: endpoint.name, remoteAddress: head.remoteAddress, connectedAt: head.connectedAt, bytesIn: early.length, bytesOut: 0 }
      events.emit('conn:start', c)
      stream.once('close', () => events.emit('conn:end', c))
      conn = c
    }
    dial(stream, early, endpoint, log, conn)
  }
  const toInternal = (stream: Duplex, early: Buffer, target: string): void => {
    if (stream.destroyed) return
    const code = 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND'
    if (hops >= MAX_TCP_INTERNAL_HOPS) {
      log('warn', 'forward-internal: too many hops; connection closed', { target, hops, code: 'GW_ERR_POLICY_FORWARD_LOOP' })
      return void stream.destroy()
    }
    const proto = target.startsWith('tls:') ? 'tls' as const : 'tcp' as const
    const next: TcpHead = { ...head, proto, tunnel: target, hops: hops + 1 }
    const local = runtime.rawInternalEndpoint?.(target)
    if (local) {
      log('debug', 'forward-internal', { target })
      return connectTcp(stream, early, next, local, runtime, hops + 1)
    }
    const remote = runtime.openRemoteRawInternal?.(target)
    if (!remote) {
      log('warn', 'forward-internal: no such internal endpoint online; connection closed', { target, code })
      return void stream.destroy()
    }
    log('debug', 'forward-internal through the relay', { target })
    spliceToRemoteInternal(stream, early, next, remote)
  }
  if (!endpoint.policy?.hasTcpRules) return go(stream, early)
  runTcpConnect(endpoint, head, runtime).then(({ verdict, tls }) => {
    if (verdict !== undefined && verdict.internal === undefined) {
      log('info', 'connection closed by the traffic policy', { action: verdict.action, rule: verdict.rule, ...(verdict.errorCode ? { code: verdict.errorCode } : {}) })
      return void stream.destroy()
    }
    const next = (plain: Duplex, rest: Buffer): void => verdict?.internal !== undefined ? toInternal(plain, rest, verdict.internal) : go(plain, rest)
    // terminate-tls: the handshake first, then plaintext on.
    if (tls) return terminateTls(stream, early, tls, log, (plain) => next(plain, Buffer.alloc(0)))
    next(stream, early)
  }, (err: Error) => {
    log('warn', 'on_tcp_connect failed; connection closed', { error: err.message })
    stream.destroy()
  })
}

function dial(stream: Duplex, early: Buffer, endpoint: EndpointRuntime, log: Log, conn: TcpConnection | undefined): void {
  const { hostname, port, origin } = endpoint.upstream
  const socket: Socket = connect({ host: hostname, port, allowHalfOpen: true, noDelay: true, autoSelectFamily: true, lookup: loopbackAwareLookup, timeout: CONNECT_TIMEOUT_MS })
  let connected = false
  socket.once('connect', () => {
    connected = true
    socket.setTimeout(0)
    log('debug', 'tcp connection', { upstream: origin })
  })
  socket.once('timeout', () => {
    if (!connected) socket.destroy(Object.assign(new Error(`connect timed out after ${CONNECT_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' }))
  })
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (!connected) log('warn', 'the upstream refused the connection', { upstream: origin, code: 'GW_ERR_UPSTREAM_REFUSED', error: err.code ?? err.message })
    stream.destroy()
  })
  // The relay reset the stream (the client reset, or the link went): reset the upstream too.
  stream.on('error', () => {
    if (!socket.destroyed) socket.resetAndDestroy()
  })
  socket.once('close', (hadError: boolean) => {
    if (hadError || !stream.writableEnded) stream.destroy()
  })
  stream.once('close', () => {
    if (socket.destroyed) return
    if (!stream.readableEnded) socket.resetAndDestroy()
    else if (!socket.writableEnded) socket.end()
  })
  if (conn) {
    // Listeners beside the pipes, added in the same tick: pause and resume still reach them.
    stream.on('data', (d: Buffer) => { conn.bytesIn += d.length })
    socket.on('data', (d: Buffer) => { conn.bytesOut += d.length })
  }
  if (early.length > 0) socket.write(early)
  stream.pipe(socket)
  socket.pipe(stream)
  // The client's FIN may already have come with the head.
  if (stream.readableEnded) socket.end()
  stream.resume()
}
