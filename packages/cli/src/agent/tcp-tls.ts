/**
 * terminate-tls on a tcp or tls endpoint (policy/actions/terminate-tls.ts): the agent
 * does the TLS handshake with the client over the relay's stream, with the certificate,
 * versions and client-certificate rules of the action, and hands the plaintext on (to
 * the upstream, or to forward-internal's target). A failed handshake (a version outside
 * the range, a client certificate missing or not from the given CAs) closes the
 * connection before anything is dialled, and is logged.
 */
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { X509Certificate } from 'node:crypto'
import { TLSSocket, type DetailedPeerCertificate } from 'node:tls'
import type { TlsTermination } from '../policy/index.js'

/** A handshake not finished by then closes the connection, ms. */
const HANDSHAKE_TIMEOUT_MS = 10_000

type Log = (level: 'debug' | 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void

export function terminateTls(stream: Duplex, early: Buffer, tls: TlsTermination, log: Log, next: (plain: Duplex) => void): void {
  if (early.length > 0) stream.unshift(early)
  const requestCert = tls.clientCertificate !== 'none'
  const socket: TLSSocket = new TLSSocket(stream as unknown as Socket, {
    isServer: true,
    secureContext: tls.secureContext,
    requestCert,
    // A bare TLSSocket does not act on rejectUnauthorized (tls.Server does): the chain is checked below, after the handshake.
    rejectUnauthorized: false,
  })
  // Half-close kept, as on a plain tcp endpoint: the client's close_notify and FIN do not end the upstream's answer.
  socket.allowHalfOpen = true
  let secure = false
  const refuse = (why: string, fields: Record<string, unknown> = {}): void => {
    log('info', `terminate-tls: ${why}; connection closed`, { code: 'GW_ERR_POLICY_TLS_HANDSHAKE', ...fields })
    socket.destroy()
    stream.destroy()
  }
  const timer = setTimeout(() => refuse('the TLS handshake did not finish in time'), HANDSHAKE_TIMEOUT_MS)
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (secure) return
    clearTimeout(timer)
    refuse('the TLS handshake failed', { error: err.code ?? err.message })
  })
  // The stream went (the client or the link): nothing more to do with the TLS side.
  stream.once('close', () => {
    clearTimeout(timer)
    if (!socket.destroyed) socket.destroy()
  })
  socket.once('secure', () => {
    clearTimeout(timer)
    if (requestCert) {
      const peer = socket.getPeerCertificate(true)
      const given = peer !== null && typeof peer === 'object' && peer.raw !== undefined
      if (!given && tls.clientCertificate !== 'request') return refuse('the client sent no certificate')
      if (given && tls.clientCertificate !== 'require-any') {
        const why = verifyChain(peer, tls.cas)
        if (why !== undefined) return refuse('the client certificate does not verify', { error: why })
      }
    }
    secure = true
    log('debug', 'terminate-tls: handshake done', { protocol: socket.getProtocol() })
    // The plaintext side closed: end the relay's stream too, so the client sees the close.
    socket.once('close', () => {
      if (stream.destroyed) return
      if (!stream.writableEnded) stream.end()
      // Bytes still queued get a moment; a peer that never finishes is cut.
      setTimeout(() => stream.destroy(), 5_000).unref()
    })
    next(socket)
  })
}

/**
 * Undefined when the client's certificate chains to one of `cas` (through the
 * intermediates it sent), each link signed by the next and in its validity period; else why not.
 */
export function verifyChain(peer: DetailedPeerCertificate, cas: readonly X509Certificate[], now = Date.now()): string | undefined {
  let node = peer
  let current: X509Certificate
  try {
    current = new X509Certificate(node.raw)
  } catch {
    return 'unreadable certificate'
  }
  for (let depth = 0; depth < 8; depth++) {
    if (Date.parse(current.validFrom) > now || Date.parse(current.validTo) < now) return `${current.subject.replace(/\n/g, ', ')} is outside its validity period`
    for (const ca of cas) {
      if (current.checkIssued(ca) && current.verify(ca.publicKey)) return undefined
    }
    const up = node.issuerCertificate
    if (!up || up === node || up.raw === undefined) return `${current.subject.replace(/\n/g, ', ')} is not issued by a trusted certificate authority`
    let issuer: X509Certificate
    try {
      issuer = new X509Certificate(up.raw)
    } catch {
      return 'unreadable certificate in the chain'
    }
    if (!issuer.ca || !current.checkIssued(issuer) || !current.verify(issuer.publicKey)) return 'the certificate chain is broken'
    current = issuer
    node = up
  }
  return 'the certificate chain is too long'
}
