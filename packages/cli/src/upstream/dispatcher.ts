/**
 * The undici Agent every upstream call goes through (tunnel requests, pools, replays):
 * one connection pool per origin, kept alive between requests.
 */
import { Agent as UndiciAgent } from 'undici'
import { loopbackAwareLookup } from './address.js'

export interface UpstreamClientOptions {
  /** Verify the upstream's TLS certificate. Off by default, as in ngrok: it is your own service. */
  tlsVerify: boolean
  /** Time to wait for the upstream's response head, in ms (then 504). */
  responseTimeout: number
  /** Time a response body may stay silent, in ms (0: forever, for event streams). */
  bodyIdleTimeout: number
  maxHeaderSize: number
}

export function createUpstreamDispatcher(options: UpstreamClientOptions): UndiciAgent {
  return new UndiciAgent({
    connect: {
      rejectUnauthorized: options.tlsVerify,
      autoSelectFamily: true,
      autoSelectFamilyAttemptTimeout: 250,
      lookup: loopbackAwareLookup,
      timeout: Math.min(options.responseTimeout, 10_000),
    },
    headersTimeout: options.responseTimeout,
    bodyTimeout: options.bodyIdleTimeout,
    maxHeaderSize: options.maxHeaderSize,
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 60_000,
    // Requests in flight each get their own connection; the pool keeps them for reuse.
    connections: null,
    pipelining: 1,
  })
}
