/**
 * ACME for the relays of a cluster (`--redis`, or `--workers` without it): what the
 * certificate manager (manager.ts) shares with the other relays, through the cluster's
 * backend (cluster/backend.ts, made into this by cluster/cluster-acme.ts):
 *
 * - pending challenges: the CA's validation request lands on whichever relay its DNS
 *   and the load balancer pick, so the answer to every HTTP-01 token and TLS-ALPN-01
 *   host is written to the shared state before the CA is told to validate, and any
 *   relay answers it from there;
 * - issued certificates: the relay that ordered one writes it there and tells the
 *   others, who install it at once (and keep it in their own state directory); a relay
 *   that starts takes every one there is;
 * - one order per certificate: a lock with a TTL (the relay that holds it orders; the
 *   others wait for the certificate it writes), a failure backoff and the hourly budget,
 *   for the whole cluster; renewals take the same lock, so a certificate is renewed once;
 * - one ACME account: the first relay's key is every relay's.
 */
import type { AcmeBegin } from '../cluster/backend.js'

export type { AcmeBegin }

export interface SharedAcme {
  /** This relay's id in the cluster: the lock holder. */
  readonly id: string
  /** How log lines speak of the shared state ("Redis", "the primary process"). */
  readonly describe: string
  setChallenge(id: string, value: string, ttlMs: number): Promise<void>
  getChallenge(id: string): Promise<string | null>
  clearChallenge(id: string): Promise<void>
  /** Every stored certificate: [order key, JSON {cert, key}]. */
  certs(): Promise<Array<[string, string]>>
  cert(key: string): Promise<string | null>
  /** Store a certificate and tell the other relays. */
  putCert(key: string, raw: string): Promise<void>
  deleteCert(key: string): Promise<void>
  accountKey(candidate: string): Promise<string>
  begin(key: string, lockTtlMs: number, perHour: number): Promise<AcmeBegin>
  /** Is another relay still ordering `key`? */
  locked(key: string): Promise<boolean>
  end(key: string, failedBackoffMs: number): Promise<void>
  /** `handler` hears of every certificate another relay stores (its order key). */
  onCert(handler: (key: string) => void): Promise<void>
}

/** A stored certificate as the shared state keeps it. */
export interface SharedCert {
  cert: string
  key: string
}

export function parseSharedCert(raw: string | null): SharedCert | undefined {
  if (raw === null) return undefined
  try {
    const value = JSON.parse(raw) as Partial<SharedCert>
    if (typeof value.cert === 'string' && typeof value.key === 'string') return { cert: value.cert, key: value.key }
  } catch { /* not ours */ }
  return undefined
}
