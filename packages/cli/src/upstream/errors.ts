/**
 * Upstream pool errors. `GW_ERR_UPSTREAM_POOL_DOWN` is in the CLI's code table
 * (`src/errors.ts`).
 */
import { CodedError } from '@gw/protocol'
import { AgentErrorCodes } from '../errors.js'

export class UpstreamPoolDownError extends CodedError {
  declare readonly code: 'GW_ERR_UPSTREAM_POOL_DOWN'
  readonly pool: string

  constructor(pool: string, detail: string) {
    super('GW_ERR_UPSTREAM_POOL_DOWN', AgentErrorCodes.GW_ERR_UPSTREAM_POOL_DOWN.status, `every target of the upstream pool "${pool}" is down or ejected (${detail})`)
    this.name = 'UpstreamPoolDownError'
    this.pool = pool
  }
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'GW_ERR_UPSTREAM_REFUSED',
])

/**
 * True for failures to reach the target at all (refused, reset before a response,
 * unreachable). These eject the target and, for idempotent requests, allow one retry
 * elsewhere; an HTTP error status does not.
 */
export function isConnectionError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && CONNECT_CODES.has(e.code)) return true
    if (e instanceof AggregateError) return e.errors.some(isConnectionError)
  }
  return false
}
