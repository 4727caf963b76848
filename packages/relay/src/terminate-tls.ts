/**
 * terminate-tls on https endpoints. The relay ends an http endpoint's TLS, so an agent
 * whose policy has terminate-tls in on_tcp_connect (mutual TLS, TLS versions) asks the
 * relay to run it (`EndpointRequest.terminateTls`). Each distinct terminate-tls gets a
 * TLS server of its own, beside the HTTPS listener's and with the same certificates, that
 * asks for a client certificate (with the endpoint's CAs as the only trusted ones) and
 * keeps to the versions. The HTTPS port's front (acme/tls-front.ts) reads the SNI of each
 * ClientHello before TLS starts and hands the connection to the server of the name's
 * terminate-tls, so only that name's clients are asked for a certificate: a browser
 * visiting any other name gets no CertificateRequest, and no prompt.
 *
 * A connection that went through one is marked with its digest, which the relay checks
 * per request (another name's connection, an HTTP/2 connection coalesced across names, a
 * connection opened before the agent asked: 421 GW_ERR_MISDIRECTED_REQUEST, which makes a
 * browser open a new connection) and sends in the request head, where the agent checks it
 * again. Failures, as ngrok's: no certificate or one from another CA with
 * `require-and-verify` fails the TLS handshake (an alert); `require-any` without a
 * certificate and `request` with one that does not verify close the connection right
 * after the handshake (OpenSSL verifies only in the first mode).
 */
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions } from 'node:https'
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls'
import { GwError, MAX_CLIENT_CERT_PEM, terminateTlsDigest, type ClientCertificate, type TerminateTlsRequest } from '@gw/protocol'
import { pairContext, pairOf } from './context-pairs.js'

type Sni = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void

export interface TerminateTlsBase {
  /** The HTTPS listener's server options (limits, ALPN). */
  options: ServerOptions
  key: string
  cert: string
  SNICallback: Sni | undefined
}

const TERMINATED = Symbol('gw.terminateTls')
const CLIENT = Symbol('gw.tlsClient')

interface Marked {
  [TERMINATED]?: string
  [CLIENT]?: ClientCertificate | null
}

/** The digest of the terminate-tls a connection went through, if any (an HTTP/2 request's socket reads its session's). */
export function terminatedBy(socket: unknown): string | undefined {
  return socket ? (socket as Marked)[TERMINATED] : undefined
}

/** The client certificate of a terminate-tls connection, PEM; undefined when it sent none. */
export function clientCertificateOf(socket: unknown): ClientCertificate | undefined {
  return socket ? (socket as Marked)[CLIENT] ?? undefined : undefined
}

function toPem(der: Buffer): string {
  const b64 = der.toString('base64')
  const lines: string[] = []
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64))
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`
}

interface Variant {
  server: HttpsServer
  contextOptions: SecureContextOptions
  /** Undoes the wiring (the relay forgets its HTTP/2 edge). */
  unwire: () => void
}

export class TerminateTlsServers {
  private readonly variants = new Map<string, Variant>()

  constructor(
    private base: TerminateTlsBase,
    /** Makes a new server serve like the HTTPS listener (the relay's attach and HTTP/2); returns how to undo it. */
    private readonly wire: (server: HttpsServer) => () => void,
  ) {}

  /** Servers alive now (a test and the drain read it). */
  servers(): HttpsServer[] {
    return [...this.variants.values()].map((v) => v.server)
  }

  /**
   * The TLS server for `request`, made on first use. CAs OpenSSL cannot load are refused
   * here, at the hello, with GW_ERR_TERMINATE_TLS_INVALID.
   */
  serverFor(request: TerminateTlsRequest): { digest: string; server: HttpsServer } {
    const digest = terminateTlsDigest(request)
    const known = this.variants.get(digest)
    if (known) return { digest, server: known.server }
    const cas = request.clientCas
    const contextOptions: SecureContextOptions = {
      minVersion: request.minVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
      maxVersion: request.maxVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
      ...(cas.length > 0 ? { ca: cas } : {}),
    }
    try {
      createSecureContext({ ...contextOptions, key: this.base.key, cert: this.base.cert })
    } catch (err) {
      throw new GwError('GW_ERR_TERMINATE_TLS_INVALID', `the relay cannot use the endpoint's terminate-tls (mutual_tls_certificate_authorities, min_version, max_version): ${(err as Error).message}`)
    }
    const requestCert = cas.length > 0
    const own = new WeakMap<SecureContext, SecureContext>()
    const baseSni = this.base.SNICallback
    // The SNI callback's context carries the verify store and the CA names sent, so a name
    // with a certificate of its own gets a context of the same pair with this one's CAs.
    const SNICallback: Sni | undefined = baseSni
      ? (servername, cb) => baseSni(servername, (err, ctx) => {
          if (err || !ctx) return cb(err, ctx)
          let mine = own.get(ctx)
          if (!mine) {
            const pair = pairOf(ctx)
            if (!pair) return cb(new Error('this certificate cannot serve a terminate-tls endpoint'))
            mine = pairContext(pair, contextOptions)
            own.set(ctx, mine)
          }
          cb(null, mine)
        })
      : undefined
    const server = createHttpsServer({
      ...this.base.options,
      ...contextOptions,
      key: this.base.key,
      cert: this.base.cert,
      requestCert,
      // Only here does OpenSSL verify (against these CAs alone) and fail the handshake.
      rejectUnauthorized: requestCert && request.clientVerify === 'require-and-verify',
      ...(SNICallback ? { SNICallback } : {}),
    })
    const unwire = this.wire(server)
    // The listeners the wiring added parse HTTP/1.1 or HTTP/2: a connection reaches them
    // marked, and only once the client-certificate rule holds.
    const serve = server.listeners('secureConnection') as Array<(socket: TLSSocket) => void>
    server.removeAllListeners('secureConnection')
    server.on('secureConnection', (socket: TLSSocket) => {
      const marked = socket as unknown as Marked
      if (requestCert) {
        const raw = socket.getPeerCertificate()?.raw
        if (!raw && request.clientVerify !== 'request') return void socket.destroy()
        if (raw && request.clientVerify === 'request' && !socket.authorized) return void socket.destroy()
        const pem = raw ? toPem(raw) : undefined
        marked[CLIENT] = pem !== undefined && pem.length <= MAX_CLIENT_CERT_PEM ? { pem } : null
      } else marked[CLIENT] = null
      marked[TERMINATED] = digest
      for (const listener of serve) listener.call(server, socket)
    })
    this.variants.set(digest, { server, contextOptions, unwire })
    return { digest, server }
  }

  /** Forget the servers no endpoint uses now; the connections they made stay until they close. */
  retain(inUse: ReadonlySet<string>): void {
    for (const [digest, variant] of this.variants) {
      if (inUse.has(digest)) continue
      this.variants.delete(digest)
      variant.server.close()
      variant.unwire()
    }
  }

  /** The relay's certificate was reloaded: every server takes it. */
  setCertificate(key: string, cert: string): void {
    this.base = { ...this.base, key, cert }
    for (const variant of this.variants.values()) variant.server.setSecureContext({ ...variant.contextOptions, key, cert })
  }
}
