/**
 * The PEM certificate and key each SNI context was made from (the per-name contexts of
 * tls.ts and the ACME manager's). A terminate-tls server (terminate-tls.ts) must answer
 * with the same certificate but its own client CAs: Node takes the verify store and the
 * CA names it sends from the context the SNI callback picks, so it makes one of its own
 * from the same pair, and never adds CAs to a context other connections share.
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls'

export interface PemPair {
  cert: string
  key: string
}

const pairs = new WeakMap<SecureContext, PemPair>()

/** `createSecureContext` for a certificate and key, remembered for pairOf(). */
export function pairContext(pair: PemPair, extra: SecureContextOptions = {}): SecureContext {
  const context = createSecureContext({ ...extra, cert: pair.cert, key: pair.key })
  pairs.set(context, pair)
  return context
}

export function pairOf(context: SecureContext): PemPair | undefined {
  return pairs.get(context)
}
