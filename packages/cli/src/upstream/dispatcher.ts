/**
 * The undici Agent every upstream call goes through (tunnel requests, pools, replays):
 * one connection pool per origin, kept alive between requests. `localhost` origins
 * connect straight to the loopback address the port answers on (loopback-choice.ts);
 * other names race their addresses with happy eyeballs.
 * HTTP/2 to the upstream is http2-client.ts.
 */
import { Agent as UndiciAgent, buildConnector } from 'undici'
import { loopbackAwareLookup } from './address.js'
import { forgetLocalhost, isLocalhost, localhostAddress } from './loopback-choice.js'

export interface UpstreamClientOptions {
  /** Verify the upstream's TLS certificate. Off by default, as in ngrok: it is your own service. */
  tlsVerify: boolean
  /** Time to wait for the upstream's response head, in ms (then 504). */
  responseTimeout: number
  /** Time a response body may stay silent, in ms (0: forever, for event streams). */
  bodyIdleTimeout: number
  maxHeaderSize: number
}

/** What the agent speaks to the upstream: `http1` (the default) or `http2`. */
export type UpstreamProtocol = 'http1' | 'http2'

export const UPSTREAM_PROTOCOLS: readonly UpstreamProtocol[] = ['http1', 'http2']

export function createUpstreamDispatcher(options: UpstreamClientOptions): UndiciAgent {
  const connectTimeout = Math.min(options.responseTimeout, 10_000)
  const base = buildConnector({
    rejectUnauthorized: options.tlsVerify,
    autoSelectFamily: true,
    autoSelectFamilyAttemptTimeout: 250,
    lookup: loopbackAwareLookup,
    timeout: connectTimeout,
  })
  return new UndiciAgent({
    connect: localhostFirst(base, connectTimeout),
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

function localhostFirst(base: buildConnector.connector, timeout: number): buildConnector.connector {
  const connector: buildConnector.connector = (opts, callback) => {
    if (!isLocalhost(opts.hostname)) return base(opts, callback)
    const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80)
    const direct = (address: string, retry: boolean): void => {
      base({ ...opts, hostname: address, servername: opts.servername || 'localhost' }, (err, socket) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
          forgetLocalhost(port, address)
          if (retry) return void localhostAddress(port, timeout).then((again) => direct(again, false), (e: Error) => callback(e, null))
        }
        if (err) callback(err, null)
        else callback(null, socket!)
      })
    }
    localhostAddress(port, timeout).then((address) => direct(address, true), (err: Error) => callback(err, null))
  }
  return connector
}
