/**
 * Raw TCP for the tcp and tls endpoint tests: real sockets on 127.0.0.1, Node's net
 * clients, and small servers (an echo, a hasher, a server that speaks first).
 */
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net'
import { createHash } from 'node:crypto'

export interface TcpServer {
  server: Server
  port: number
  /** Sockets accepted so far. */
  accepted: Socket[]
  close(): Promise<void>
}

export async function startTcpServer(onSocket: (socket: Socket) => void): Promise<TcpServer> {
  const accepted: Socket[] = []
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted.push(socket)
    socket.on('error', () => {})
    onSocket(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    server,
    port: (server.address() as AddressInfo).port,
    accepted,
    close: () => new Promise((resolve) => {
      for (const s of accepted) s.destroy()
      server.close(() => resolve())
    }),
  }
}

/** Echoes every byte; ends its side when the client ends its own (half-close kept). */
export function echo(socket: Socket): void {
  socket.pipe(socket)
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

export interface Exchange {
  /** Every byte the client received, in order. */
  received: Buffer
  /** How the connection ended: 'end' (a FIN, then close) or the error code (ECONNRESET…). */
  ending: string
}

/**
 * Connect, write `send` (then FIN, unless `keepOpen`), and collect what comes back until
 * the connection closes.
 */
export function exchange(port: number, send: Buffer | string, options: { keepOpen?: boolean; host?: string } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: options.host ?? '127.0.0.1', allowHalfOpen: true })
    const chunks: Buffer[] = []
    let ending = 'close'
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.on('end', () => {
      ending = 'end'
      socket.end()
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      ending = err.code ?? err.message
    })
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), ending }))
    if (options.keepOpen) socket.write(send)
    else socket.end(send)
  })
}

/** Open a connection and wait until it is connected. */
export function open(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host, allowHalfOpen: true })
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Read from `socket` until `bytes` have arrived (or it ends). */
export function readBytes(socket: Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let n = 0
    const onData = (d: Buffer): void => {
      chunks.push(d)
      n += d.length
      if (n >= bytes) done()
    }
    const done = (): void => {
      socket.off('data', onData)
      socket.off('end', done)
      socket.off('error', reject)
      resolve(Buffer.concat(chunks))
    }
    socket.on('data', onData)
    socket.once('end', done)
    socket.once('error', reject)
  })
}

/** How a socket ends: 'end' for a FIN, else the error code. */
export function ending(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let how = 'close'
    socket.on('data', () => {})
    socket.once('end', () => {
      how = 'end'
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      how = err.code ?? err.message
    })
    socket.once('close', () => resolve(how))
  })
}

/** The port of a `tcp://host:port` URL. */
export function portOf(url: string): number {
  const m = /^tcp:\/\/.+:(\d+)$/.exec(url)
  if (!m) throw new Error(`not a tcp URL: ${url}`)
  return Number(m[1])
}
