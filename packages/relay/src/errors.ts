/**
 * The relay's own error catalogue: the codes `startRelay` and its options raise before
 * anything listens (what an operator sees when `gw relay` refuses to start), and the
 * certificate manager's, which reach the operator's log only. The codes
 * the relay answers public clients and agents with travel on the wire, so they are
 * @gw/protocol's table; nothing else here defines a code. Each code has the status it
 * would end a request with, its one-line meaning and a row in docs/errors.md
 * (test/docs/errors-table.test.ts checks both ways). Codes are never reused.
 */
import { CodedError } from '@gw/protocol'

export const RelayErrorCodes = {
  GW_ERR_RELAY_NO_AUTHTOKENS: { status: 500, message: 'a relay on a public address needs authtokens' },
  GW_ERR_RELAY_TLS: { status: 500, message: 'the TLS certificate or key could not be loaded' },
  GW_ERR_RELAY_LISTEN: { status: 500, message: 'the relay could not listen on its address' },
  GW_ERR_RELAY_OPTION_INVALID: { status: 400, message: 'a relay option (flag or setting) is not valid' },
  GW_ERR_RELAY_TOKENS_FILE: { status: 400, message: 'the authtokens file could not be read or has a bad line' },
  GW_ERR_RELAY_CONFIG: { status: 400, message: 'the relay config file is not valid' },
  GW_ERR_RELAY_REDIS: { status: 500, message: 'the relay could not reach Redis (--redis) at start' },
  GW_ERR_RELAY_WORKER_STATE: { status: 500, message: 'a relay worker could not reach the primary process that holds the shared state (--workers without --redis)' },
  GW_ERR_RELAY_CACHE_DIR: { status: 500, message: 'the relay cache\'s directory (--relay-cache-dir) cannot be used' },

  // Certificates from ACME (acme/manager.ts): logged; the TLS client gets the default certificate.
  GW_ERR_ACME_ISSUE: { status: 502, message: 'the ACME server did not issue a certificate' },
  GW_ERR_ACME_RATE_LIMITED: { status: 429, message: 'the relay refused to start another certificate order now' },
  GW_ERR_ACME_NOT_HELD: { status: 404, message: 'no agent holds the host, so no certificate is ordered for it' },
  GW_ERR_ACME_DNS_HOOK: { status: 502, message: 'the DNS-01 hook command failed' },
} as const satisfies Record<string, { status: number; message: string }>

export type RelayErrorCode = keyof typeof RelayErrorCodes

export function isRelayErrorCode(value: unknown): value is RelayErrorCode {
  return typeof value === 'string' && Object.hasOwn(RelayErrorCodes, value)
}

/** An error with a code from the relay's table above. */
export class RelayError extends CodedError {
  declare readonly code: RelayErrorCode

  constructor(code: RelayErrorCode, message: string = RelayErrorCodes[code].message, options?: ErrorOptions) {
    super(code, RelayErrorCodes[code].status, message, options)
    this.name = 'RelayError'
  }
}
