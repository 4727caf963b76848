/**
 * Real transports for multiplexer tests: a TCP socket pair and a WebSocket pair, both on
 * 127.0.0.1 port 0, plus a yamux session on each end.
 */
import { once } from 'node:events'
import { createServer, connect, type Socket } from 'node:net'
import type { Duplex, Readable } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'
import { Session, createWebSocketTransport, type SessionOptions } from '@gw/protocol'

export type TransportKind = 'net' | 'ws'

export interface TransportPair {
  client: Duplex
  server: Duplex
  close(): Promise<void>
}

export async function netPair(): Promise<TransportPair> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const client = connect(port, '127.0.0.1')
  await once(client, 'connect')
  const [serverSide] = await accepted
  client.setNoDelay(true)
  serverSide.setNoDelay(true)
  return {
    client,
    server: serverSide,
    async close() {
      client.destroy()
      serverSide.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

export interface WsPair {
  client: WebSocket
  server: WebSocket
  close(): Promise<void>
}

export async function wsSocketPair(): Promise<WsPair> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await once(wss, 'listening')
  const { port } = wss.address() as { port: number }
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>
  const client = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false })
  await once(client, 'open')
  const [server] = await accepted
  return {
    client,
    server,
    async close() {
      client.terminate()
      server.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
  }
}

export async function transportPair(kind: TransportKind): Promise<TransportPair> {
  if (kind === 'net') return netPair()
  const pair = await wsSocketPair()
  return {
    client: createWebSocketTransport(pair.client),
    server: createWebSocketTransport(pair.server),
    close: () => pair.close(),
  }
}

export function ignore(): void {}

/** Streams left open when a test ends fail with the link; tests need not care. */
function quietStreams(session: Session): void {
  const open = session.open.bind(session)
  session.open = () => {
    const s = open()
    s.on('error', ignore)
    return s
  }
}

export interface SessionPair {
  client: Session
  server: Session
  transports: TransportPair
  close(): Promise<void>
}

export async function sessionPair(
  kind: TransportKind,
  clientOptions: Partial<SessionOptions> = {},
  serverOptions: Partial<SessionOptions> = {},
): Promise<SessionPair> {
  const transports = await transportPair(kind)
  const client = new Session(transports.client, { keepAliveInterval: 0, ...clientOptions, client: true })
  const server = new Session(transports.server, { keepAliveInterval: 0, ...serverOptions, client: false })
  quietStreams(client)
  quietStreams(server)
  return {
    client,
    server,
    transports,
    async close() {
      client.close()
      server.close()
      await transports.close()
    },
  }
}

/**
 * Everything a stream delivers until 'end'. Not `for await`: the async iterator destroys
 * a Duplex when the readable side ends, which would reset a yamux stream still writing.
 */
export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    stream.on('data', (chunk: Buffer) => parts.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(parts)))
    stream.once('error', reject)
  })
}

/** Resolve when `check()` holds, polling on the event loop; for state that has no event. */
export async function until(check: () => boolean, what: string, limitMs = 5_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

export function nextStream(session: Session): Promise<import('@gw/protocol').Stream> {
  return once(session, 'stream').then(([s]) => {
    const stream = s as import('@gw/protocol').Stream
    stream.on('error', ignore)
    return stream
  })
}
