/**
 * One request to a pool, with the retry rule: an idempotent request whose body has not
 * been sent is tried once more on another target after a connection failure. A request
 * with a streamed body cannot be replayed, so the caller says whether a retry is possible.
 */
import { isConnectionError, UpstreamPoolDownError } from './errors.js'
import type { UpstreamPool, UpstreamTarget } from './pool.js'

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT.has(method.toUpperCase())
}

export interface SentRequest<T> {
  target: UpstreamTarget
  value: T
}

/**
 * Resolve with the target that answered and `send`'s value (typically the response
 * head). The caller then calls `pool.release(target, 'ok' | 'error')` when the response
 * ends. Failed attempts are released here.
 *
 * @example
 * const { target, value: res } = await sendWithRetry(pool, isIdempotentMethod(m) && !hasBody, (t) =>
 *   undici.request(t.origin + t.basePath + path, { method: m }))
 * res.body.on('end', () => pool.release(target, 'ok'))
 */
export async function sendWithRetry<T>(
  pool: UpstreamPool,
  retryable: boolean,
  send: (target: UpstreamTarget) => Promise<T>,
  first?: UpstreamTarget,
): Promise<SentRequest<T>> {
  let target = first ?? pool.pick()
  let firstError: unknown
  try {
    return { target, value: await send(target) }
  } catch (err) {
    const connect = isConnectionError(err)
    pool.release(target, connect ? 'connect-error' : 'error')
    if (!connect || !retryable) throw err
    firstError = err
  }
  try {
    target = pool.pick(target)
  } catch (err) {
    // No other target to try: the connection error says more than "pool down".
    if (err instanceof UpstreamPoolDownError) throw firstError
    throw err
  }
  try {
    return { target, value: await send(target) }
  } catch (err) {
    pool.release(target, isConnectionError(err) ? 'connect-error' : 'error')
    throw err
  }
}
