/**
 * The relay-to-relay link: a relay that gets a request for a name whose agent is held by
 * another relay opens a yamux stream to that relay over one TCP connection per peer,
 * writes the name on a line, then speaks the agent protocol on it exactly as it would to
 * the agent (relay-request.ts, relay-upgrade.ts are unchanged). The holder splices the
 * stream onto a new stream of the agent's link, byte for byte.
 *
 * Both ends prove they know the cluster secret before any stream: a mutual HMAC-SHA256
 * challenge over fresh nonces, so the secret never crosses the wire and a recorded
 * handshake cannot be replayed. The link itself is not encrypted: keep the peer
 * addresses on a private network (docs/scaling.md).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { GwError, keepAliveFor, MessageWriter, Session, type Stream } from '@gw/protocol'
import type { LogFn } from '../options.js'
import { readFirstLine, splice } from '../stream-line.js'

const NONCE = 32
const HANDSHAKE_MS = 5_000
const DIAL_MS = 2_000
/** After a failed dial, the same relay is not dialled again for this long. */
const DOWN_MS = 250
/**
 * A stream's first line: the tunnel name (a DNS label), `tcp:<port>`, or an internal
 * endpoint's `int:<owner> <host>` (`int:token:<hex> api.internal`, `int:token:<hex>
 * tcp://camera.internal:22`), then '\n'.
 */
const MAX_LINE = 1024

function proof(secret: Buffer, side: 'S' | 'C', client: Buffer, server: Buffer): Buffer {
  return createHmac('sha256', secret).update(side).update(client).update(server).digest()
}

/** Exactly `n` bytes from the socket; anything after them is left for the next reader. */
function readExactly(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let got = 0
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      got += chunk.length
      if (got < n) return
      cleanup()
      socket.pause()
      const all = Buffer.concat(chunks)
      if (all.length > n) socket.unshift(all.subarray(n))
      resolve(all.subarray(0, n))
    }
    const onEnd = (): void => {
      cleanup()
      reject(new Error('the peer closed the connection during the handshake'))
    }
    const cleanup = (): void => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
    }
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('close', onEnd)
    socket.resume()
  })
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
    }),
  ])
}

export interface PeerServer {
  /** host:port it listens on. */
  readonly address: string
  readonly port: number
  close(): Promise<void>
}

/** Where a forwarded stream goes: the local agent link for the name (or `tcp:<port>`, or `int:<owner> <host>`), if any. */
export type PeerTarget = (name: string) => { openStream(): Stream } | undefined

export async function listenForPeers(options: {
  host: string
  port: number
  secret: Buffer
  heartbeatTimeout: number
  target: PeerTarget
  log: LogFn
}): Promise<PeerServer> {
  const sessions = new Set<Session>()
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.setNoDelay(true)
    void withTimeout((async () => {
      const client = await readExactly(socket, NONCE)
      const nonce = randomBytes(NONCE)
      socket.write(Buffer.concat([nonce, proof(options.secret, 'S', client, nonce)]))
      const answer = await readExactly(socket, NONCE)
      if (!timingSafeEqual(answer, proof(options.secret, 'C', client, nonce))) throw new Error('the peer does not know the cluster secret')
    })(), HANDSHAKE_MS, 'the peer handshake').then(
      () => {
        const session = new Session(socket, { client: false, ...keepAliveFor(options.heartbeatTimeout) })
        sessions.add(session)
        session.once('close', () => sessions.delete(session))
        session.on('stream', (stream) => serveForwarded(stream, options.target))
        socket.resume()
      },
      (err: Error) => {
        options.log('warn', 'relay-to-relay connection refused', { remote: socket.remoteAddress, error: err.message })
        socket.destroy()
      },
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // Exclusive: in a worker of `gw relay --workers`, each worker has its own listener.
    server.listen({ host: options.host, port: options.port, exclusive: true }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  return {
    address: `${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`,
    port,
    close: async () => {
      for (const session of sessions) session.close()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A stream from a peer: read the name, then splice it onto a stream to the agent. */
function serveForwarded(stream: Stream, target: PeerTarget): void {
  readFirstLine(stream, MAX_LINE, HANDSHAKE_MS, (name) => {
    const link = target(name)
    // An internal endpoint's line names its owner: the error names only the host.
    const internal = name.startsWith('int:') ? name.slice(name.indexOf(' ') + 1) : undefined
    // A TCP connection (a port's, or a tcp or tls internal endpoint's) has no error message to read: the peer resets its client.
    const raw = name.startsWith('tcp:') || (internal !== undefined && /^(?:tcp|tls):\/\//.test(internal))
    if (!link && raw) return void stream.destroy()
    if (!link) {
      // The agent left this relay since the peer looked: the peer's client gets 502.
      stream.resume()
      if (internal !== undefined) return void new MessageWriter(stream).error('GW_ERR_INTERNAL_ENDPOINT_OFFLINE', `the agent serving ${internal} is no longer connected to the relay that held it`)
      return void new MessageWriter(stream).error('GW_ERR_AGENT_OFFLINE', `the agent for ${name} is no longer connected to the relay that held it`)
    }
    let agentStream: Stream
    try {
      agentStream = link.openStream()
    } catch (err) {
      if (raw) return void stream.destroy()
      stream.resume()
      return void new MessageWriter(stream).error('GW_ERR_RELAY_OVERLOADED', `the agent for ${internal ?? name} cannot take a new request: ${(err as Error).message}`, 503)
    }
    splice(stream, agentStream)
  })
}

/** Links to the other relays, one per peer address, dialled when first needed. */
export class PeerPool {
  private readonly sessions = new Map<string, Promise<Session>>()
  /** A relay whose dial just failed is not dialled again before this (ms since the epoch). */
  private readonly down = new Map<string, number>()
  private closed = false

  constructor(private readonly secret: Buffer, private readonly heartbeatTimeout: number) {}

  /** A session to the relay at `address` (host:port), dialled and authenticated if need be. */
  session(address: string): Promise<Session> {
    const existing = this.sessions.get(address)
    if (existing) return existing
    const downUntil = this.down.get(address)
    if (downUntil !== undefined) {
      if (Date.now() < downUntil) return Promise.reject(new GwError('GW_ERR_AGENT_OFFLINE', `the relay at ${address} did not answer a moment ago`))
      this.down.delete(address)
    }
    const dialled = this.dial(address)
    this.sessions.set(address, dialled)
    dialled.then(
      (session) => session.once('close', () => {
        if (this.sessions.get(address) === dialled) this.sessions.delete(address)
      }),
      () => {
        if (this.sessions.get(address) === dialled) this.sessions.delete(address)
        // Bounded: addresses come from Redis, one per relay that ever failed.
        if (this.down.size > 1024) this.down.clear()
        this.down.set(address, Date.now() + DOWN_MS)
      },
    )
    return dialled
  }

  private async dial(address: string): Promise<Session> {
    if (this.closed) throw new GwError('GW_ERR_MUX_CLOSED', 'the relay is closing')
    const colon = address.lastIndexOf(':')
    const host = address.slice(0, colon).replace(/^\[|\]$/g, '')
    const port = Number(address.slice(colon + 1))
    const socket = connect({ host, port, noDelay: true })
    socket.on('error', () => {})
    try {
      await withTimeout(new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve)
        socket.once('error', reject)
      }), DIAL_MS, `connecting to the relay at ${address}`)
      const client = randomBytes(NONCE)
      socket.write(client)
      const reply = await withTimeout(readExactly(socket, NONCE * 2), HANDSHAKE_MS, 'the peer handshake')
      const server = reply.subarray(0, NONCE)
      if (!timingSafeEqual(reply.subarray(NONCE), proof(this.secret, 'S', client, server))) {
        throw new Error(`the relay at ${address} does not know the cluster secret`)
      }
      socket.write(proof(this.secret, 'C', client, server))
    } catch (err) {
      socket.destroy()
      throw new GwError('GW_ERR_AGENT_OFFLINE', `cannot reach the relay at ${address} that holds the agent: ${(err as Error).message}`)
    }
    const session = new Session(socket, { client: true, ...keepAliveFor(this.heartbeatTimeout) })
    socket.resume()
    return session
  }

  /** A stream to the relay behind `session` for `name`, ready for the agent protocol. */
  static open(session: Session, name: string): Stream {
    const stream = session.open()
    stream.write(`${name}\n`)
    return stream
  }

  close(): void {
    this.closed = true
    for (const dialled of this.sessions.values()) dialled.then((s) => s.close(), () => {})
    this.sessions.clear()
  }
}
