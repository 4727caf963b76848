/**
 * The relay's HTTPS listener: a plain TCP server that reads each connection's
 * ClientHello (without consuming it) before TLS starts. A handshake that offers ALPN
 * `acme-tls/1` for a host with a pending challenge gets the challenge certificate and
 * nothing else (RFC 8737); one whose SNI names a tls endpoint goes, bytes intact and
 * never decrypted, to the agent holding it (tls-passthrough.ts); one whose SNI names an
 * https endpoint with terminate-tls goes to that terminate-tls's own TLS server, which
 * asks for a client certificate (terminate-tls.ts); every other
 * connection goes, bytes intact, to the relay's TLS server.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { TLSSocket, type SecureContext, type Server as TlsServer } from 'node:tls'
import { MAX_CLIENT_HELLO, parseClientHello } from './client-hello.js'

export const ACME_TLS_ALPN = 'acme-tls/1'

export interface TlsFront {
  readonly server: Server
  /** Stops listening and ends every connection it accepted. */
  close(): Promise<void>
}

export interface TlsFrontHooks {
  /** The TLS-ALPN-01 certificate for a host with a pending challenge (ACME on); a cluster's relay may have to look it up. */
  challengeFor?: (host: string) => SecureContext | undefined | Promise<SecureContext | undefined>
  /** A tls endpoint takes the connection for this SNI: true when it did. */
  passthrough?: (servername: string, socket: Socket) => boolean
  /** The TLS server for this SNI when it is not the HTTPS listener's (a name with terminate-tls, terminate-tls.ts). */
  serverFor?: (servername: string) => TlsServer | undefined
}

export function tlsFront(tlsServer: TlsServer, hooks: TlsFrontHooks, helloTimeout: number): TlsFront {
  const { challengeFor, passthrough, serverFor } = hooks
  const sockets = new Set<Socket>()
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    let buffered: Buffer = Buffer.alloc(0)
    const timer = setTimeout(() => socket.destroy(), helloTimeout)
    const done = (): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', onError)
      socket.pause()
    }
    const onError = (): void => {
      clearTimeout(timer)
      socket.destroy()
    }
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      const parsed = parseClientHello(buffered)
      if (parsed.kind === 'more' && buffered.length <= MAX_CLIENT_HELLO + 1024) return
      done()
      socket.unshift(buffered)
      const servername = parsed.kind === 'hello' ? parsed.info.servername : undefined
      const challenge = servername && challengeFor && parsed.kind === 'hello' && parsed.info.alpn.includes(ACME_TLS_ALPN)
        ? challengeFor(servername)
        : undefined
      if (challenge instanceof Promise) {
        return void challenge.then((context) => {
          if (socket.destroyed) return
          if (context) answerChallenge(socket, context)
          else onward(servername)
        })
      }
      if (challenge) return answerChallenge(socket, challenge)
      onward(servername)
    }
    const onward = (servername: string | undefined): void => {
      if (servername && passthrough?.(servername, socket)) return
      // A name with terminate-tls: its own server asks for the client certificate; no other name's does.
      const own = servername ? serverFor?.(servername) : undefined
      if (own) return void own.emit('connection', socket)
      // Not a challenge (or not a ClientHello this parser reads, or too large to wait
      // for): the TLS server gets exactly the bytes that came, and answers or refuses them.
      tlsServer.emit('connection', socket)
    }
    socket.on('data', onData)
    socket.on('error', onError)
  })
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      }),
  }
}

function answerChallenge(socket: Socket, context: SecureContext): void {
  const tls = new TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: [ACME_TLS_ALPN] })
  const timer = setTimeout(() => tls.destroy(), 10_000)
  tls.once('secure', () => tls.end())
  tls.once('close', () => clearTimeout(timer))
  tls.on('error', () => tls.destroy())
}
