/**
 * What a failure to reach the upstream means for the public client: a refused or
 * unresolvable address is 502, a timeout is 504, a response undici cannot parse is 502
 * with its own code. (ngrok answers 400 to a refused upstream, which sends users looking
 * for a bug in their request.)
 */
import type { ErrorCode } from '@gw/protocol'

const REFUSED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])
const TIMEOUT = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT'])
const BAD_RESPONSE = new Set(['UND_ERR_HEADERS_OVERFLOW', 'HPE_INVALID_CONSTANT', 'HPE_INVALID_HEADER_TOKEN', 'HPE_INVALID_STATUS'])

export function upstreamErrorCode(err: Error): ErrorCode {
  const codes: string[] = []
  // undici wraps; Node's happy-eyeballs gives an AggregateError of per-address failures.
  for (let e: unknown = err; e && codes.length < 8; e = (e as { cause?: unknown }).cause) {
    const code = (e as NodeJS.ErrnoException).code
    if (code) codes.push(code)
    if (e instanceof AggregateError) for (const inner of e.errors) codes.push((inner as NodeJS.ErrnoException).code ?? '')
  }
  if (codes.some((c) => TIMEOUT.has(c))) return 'GW_ERR_UPSTREAM_TIMEOUT'
  if (codes.some((c) => REFUSED.has(c))) return 'GW_ERR_UPSTREAM_REFUSED'
  if (codes.some((c) => BAD_RESPONSE.has(c) || c.startsWith('HPE_'))) return 'GW_ERR_UPSTREAM_BAD_RESPONSE'
  return 'GW_ERR_UPSTREAM_FAILED'
}

/** The failure in words, for the error page's detail and the inspector. */
export function describeUpstreamError(err: Error): string {
  const e = err as NodeJS.ErrnoException
  if (e.code === 'UND_ERR_HEADERS_TIMEOUT') return 'the upstream did not send response headers in time'
  if (e.code === 'UND_ERR_CONNECT_TIMEOUT') return 'connecting to the upstream timed out'
  return e.message || String(e.code)
}
