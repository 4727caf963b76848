/**
 * A token's `limits.rps` counted for the whole cluster, in Redis: the relay that receives
 * a request (the one that applies the token's limits, whether it holds the agent or
 * forwards) asks Redis before admitting it, so a token's requests spread over several
 * relays share one budget.
 *
 * A sliding window counter (as Cloudflare's and nginx-like limiters estimate it): one
 * counter per token per wall-clock second, `{gw}:rl:<owner>:<second>`, and a request is
 * admitted when `previous × (1 − elapsed) + current < rps`, where `elapsed` is the fraction
 * of the current second gone. It admits about `rps` in any one-second span (a fixed window
 * would let 2 × rps through across a boundary) for two small keys per token, and one Lua
 * call per request: GET, GET, then INCR and PEXPIRE when admitted.
 *
 * Redis away, or slower than LIMIT_TIMEOUT_MS: the relay's own token bucket decides
 * (access.ts), so each relay admits up to `rps` on its own, and the log says so once; when
 * Redis answers again the counts are global again, and the log says that too.
 */
import type { Redis } from 'ioredis'
import type { LogFn } from '../options.js'
import { KEY_PREFIX } from './redis-names.js'

/** A rate check that takes longer than this falls back on the relay's own count. */
export const LIMIT_TIMEOUT_MS = 250

const SLIDE = `
local limit, elapsed = tonumber(ARGV[1]), tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev * (1000 - elapsed) / 1000 + cur + 1 > limit then return 0 end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 2500)
return 1
`

interface LimiterRedis extends Redis {
  gwRate(current: string, previous: string, limit: number, elapsed: number): Promise<number>
}

/** What a global check says: admitted, refused, or `local` (Redis could not be asked: count here). */
export type GlobalVerdict = 'admit' | 'refuse' | 'local'

export class GlobalRateLimiter {
  private readonly redis: LimiterRedis
  private degraded = false

  constructor(redis: Redis, private readonly log: LogFn, private readonly now: () => number = Date.now) {
    redis.defineCommand('gwRate', { numberOfKeys: 2, lua: SLIDE })
    this.redis = redis as LimiterRedis
  }

  async check(owner: string, rps: number): Promise<GlobalVerdict> {
    const t = this.now()
    const second = Math.floor(t / 1000)
    let timer: NodeJS.Timeout | undefined
    try {
      const admitted = await Promise.race([
        this.redis.gwRate(`${KEY_PREFIX}rl:${owner}:${second}`, `${KEY_PREFIX}rl:${owner}:${second - 1}`, rps, t - second * 1000),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${LIMIT_TIMEOUT_MS} ms`)), LIMIT_TIMEOUT_MS)
        }),
      ])
      if (this.degraded) {
        this.degraded = false
        this.log('info', 'rate limits are counted across the cluster again (Redis answers)')
      }
      return admitted === 1 ? 'admit' : 'refuse'
    } catch (err) {
      if (!this.degraded) {
        this.degraded = true
        this.log('warn', 'Redis cannot count rate limits right now; each relay counts its own requests until it answers', { error: (err as Error).message })
      }
      return 'local'
    } finally {
      clearTimeout(timer)
    }
  }
}
