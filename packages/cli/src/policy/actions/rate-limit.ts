/**
 * `rate-limit`: ngrok's fields (`name`, `algorithm: sliding_window`, `capacity`, `rate`,
 * `bucket_key`), plus `algorithm: token_bucket` and `mode: delay` (gw's).
 *
 * Over the limit, `mode: reject` (default) answers 429 with `Retry-After` and the
 * `RateLimit-*` headers. `mode: delay` holds the request in a per-key FIFO queue and
 * lets it through when the budget allows, as long as its wait stays under `max_delay`;
 * only a request that would wait longer gets 429. Polite clients that go a little over
 * are slowed instead of failed, and an abusive client only fills its own queue.
 *
 * Every answer that passes carries `RateLimit-Limit/Remaining/Reset` and `RateLimit-Policy`.
 */
import { respondJson, type ActionDefinition } from '../action.js'
import { celToString, type CompiledExpression } from '../cel.js'
import { expressionAt } from '../compile-helpers.js'
import { createSlidingWindow, createTokenBucket, type Algorithm, type RateLimiter } from '../rate-limiter.js'
import { addResponseHook, setActionResult, type PolicyState } from '../state.js'

interface Waiter { resolve(): void; reject(): void }

export const rateLimit: ActionDefinition = {
  type: 'rate-limit',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const name = config.string('name', 'default')
    const algorithm = config.oneOf<Algorithm>('algorithm', ['sliding_window', 'token_bucket'], 'sliding_window')
    const capacity = config.int('capacity', undefined, 1, 1_000_000_000)
    const rateMs = config.duration('rate', undefined, 1, 24 * 3_600_000)
    const keyExprs = config.expressionList('bucket_key', false)
    const keys: CompiledExpression[] = keyExprs.map((e, i) => expressionAt(config, [...config.path, 'bucket_key', i], e, false))
    // The usual key, the client address, is read directly instead of through CEL.
    const byClientIp = keys.length === 0 || (keyExprs.length === 1 && keyExprs[0]!.trim() === 'conn.client_ip')
    const mode = config.oneOf('mode', ['reject', 'delay'] as const, 'reject')
    const maxDelayMs = config.duration('max_delay', mode === 'delay' ? Math.min(rateMs, 30_000) : 0, 0, 10 * 60_000)
    if (config.has('max_delay') && mode !== 'delay') config.fail('max_delay', 'only applies with mode: delay')
    // ngrok's enforce: false counts and records actions.ngrok.rate_limit.limited, but lets the request through.
    const enforce = config.bool('enforce', true)
    if (!enforce && mode === 'delay') config.fail('mode', 'delay holds requests back, which enforce: false never does; use one of them')
    config.done()

    const limiter: RateLimiter = algorithm === 'sliding_window' ? createSlidingWindow(capacity, rateMs) : createTokenBucket(capacity, rateMs)
    const clock = ctx.clock
    const policyHeader = `${capacity};w=${Math.max(1, Math.round(rateMs / 1000))}`
    const queues = new Map<string, Waiter[]>()
    const timers = new Set<NodeJS.Timeout>()
    ctx.disposables.push(() => {
      for (const t of timers) clearTimeout(t)
      for (const q of queues.values()) for (const w of q) w.reject()
      queues.clear()
    })

    function bucketKey(state: PolicyState): string {
      if (byClientIp) return state.request!.clientIp
      if (keys.length === 1) return celToString(evalKey(keys[0]!, state))
      let out = ''
      for (const k of keys) out += `${celToString(evalKey(k, state))}\u0000`
      return out
    }

    function limited(state: PolicyState, key: string, waitMs: number) {
      setActionResult(state, 'ngrok', 'rate_limit', { name, bucket_key: key, limited: true })
      const retry = Math.max(1, Math.ceil(waitMs / 1000))
      return respondJson(429, { error: 'rate_limited', message: `rate limit "${name}" exceeded; retry in ${retry}s` }, [
        'retry-after', String(retry),
        'ratelimit-limit', String(capacity),
        'ratelimit-remaining', '0',
        'ratelimit-reset', String(retry),
        'ratelimit-policy', policyHeader,
      ])
    }

    function passed(state: PolicyState, key: string): undefined {
      setActionResult(state, 'ngrok', 'rate_limit', { name, bucket_key: key, limited: false })
      addResponseHook(state, (s) => {
        const now = clock()
        s.response?.rawHeaders.push(
          'ratelimit-limit', String(capacity),
          'ratelimit-remaining', String(limiter.remaining(key, now)),
          'ratelimit-reset', String(limiter.resetSeconds(key, now)),
          'ratelimit-policy', policyHeader,
        )
      })
      return undefined
    }

    /** Release queued requests for one key, in order, as the budget allows. */
    function drain(key: string): void {
      const queue = queues.get(key)
      if (!queue) return
      while (queue.length > 0) {
        const wait = limiter.take(key, clock())
        if (wait > 0) {
          const timer = setTimeout(() => {
            timers.delete(timer)
            drain(key)
          }, wait)
          timers.add(timer)
          return
        }
        queue.shift()!.resolve()
      }
      queues.delete(key)
    }

    return function rateLimitAction(state) {
      const key = bucketKey(state)
      const now = clock()
      const queue = queues.get(key)
      const wait = queue ? -1 : limiter.take(key, now)
      if (wait === 0) return passed(state, key)
      if (!enforce) {
        setActionResult(state, 'ngrok', 'rate_limit', { name, bucket_key: key, limited: true })
        return undefined
      }
      if (mode === 'reject') return limited(state, key, wait)
      // Delay: the estimate for this request is the head's wait plus one interval per
      // request already queued ahead of it.
      const interval = rateMs / capacity
      const ahead = queue?.length ?? 0
      const estimate = (wait > 0 ? wait : interval) + ahead * interval
      if (estimate > maxDelayMs) return limited(state, key, estimate)
      return new Promise<undefined>((resolve, reject) => {
        const waiter: Waiter = {
          resolve: () => resolve(passed(state, key)),
          reject: () => reject(new Error('the policy was closed while a request was delayed')),
        }
        if (queue) queue.push(waiter)
        else {
          queues.set(key, [waiter])
          const timer = setTimeout(() => {
            timers.delete(timer)
            drain(key)
          }, wait)
          timers.add(timer)
        }
      })
    }
  },
}

function evalKey(expr: CompiledExpression, state: PolicyState): unknown {
  try {
    return expr(state.root!)
  } catch {
    return ''
  }
}
