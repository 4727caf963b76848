/** The cluster's backend as ACME's shared state (acme/shared-acme.ts). */
import type { SharedAcme } from '../acme/shared-acme.js'
import type { ClusterBackend } from './backend.js'
import { KEY_PREFIX } from './redis-backend.js'

/** A relay stored a certificate: `{"relay","key"}`. */
export const ACME_CERT_CHANNEL = `${KEY_PREFIX}acme-certs`

export function clusterAcme(backend: ClusterBackend, id: string): SharedAcme {
  return {
    id,
    describe: backend.describe,
    setChallenge: (challenge, value, ttlMs) => backend.acmeChallengeSet(challenge, value, ttlMs),
    getChallenge: (challenge) => backend.acmeChallengeGet(challenge),
    clearChallenge: (challenge) => backend.acmeChallengeDelete(challenge),
    certs: () => backend.acmeCerts(),
    cert: (key) => backend.acmeCertGet(key),
    putCert: async (key, raw) => {
      await backend.acmeCertSet(key, raw)
      await backend.publish(ACME_CERT_CHANNEL, JSON.stringify({ relay: id, key }))
    },
    deleteCert: (key) => backend.acmeCertDelete(key),
    accountKey: (candidate) => backend.acmeAccountKey(candidate),
    begin: (key, lockTtlMs, perHour) => backend.acmeBegin(key, id, lockTtlMs, perHour),
    locked: (key) => backend.acmeLocked(key),
    end: (key, failedBackoffMs) => backend.acmeEnd(key, id, failedBackoffMs),
    onCert: (handler) => backend.subscribe(ACME_CERT_CHANNEL, (raw) => {
      try {
        const message = JSON.parse(raw) as { relay?: unknown; key?: unknown }
        if (message.relay !== id && typeof message.key === 'string') handler(message.key)
      } catch { /* not ours */ }
    }),
  }
}
