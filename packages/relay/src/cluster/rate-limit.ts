/**
 * A token's `limits.rps` counted for the whole cluster, in the shared state (Redis, or the primary of --workers): the relay that receives
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
import type { LogFn } from '../options.js'
import type { ClusterBackend } from './backend.js'

/** A rate check that takes longer than this falls back on the relay's own count. */
export const LIMIT_TIMEOUT_MS = 250

/** What a global check says: admitted, refused, or `local` (the shared state could not be asked: count here). */
export type GlobalVerdict = 'admit' | 'refuse' | 'local'

export class GlobalRateLimiter {
  private degraded = false

  constructor(private readonly backend: ClusterBackend, private readonly log: LogFn) {}

  async check(owner: string, rps: number): Promise<GlobalVerdict> {
    let timer: NodeJS.Timeout | undefined
    try {
      const admitted = await Promise.race([
        this.backend.rate(owner, rps),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${LIMIT_TIMEOUT_MS} ms`)), LIMIT_TIMEOUT_MS)
        }),
      ])
      if (this.degraded) {
        this.degraded = false
        this.log('info', `rate limits are counted across the cluster again (${this.backend.describe} answers)`)
      }
      return admitted ? 'admit' : 'refuse'
    } catch (err) {
      if (!this.degraded) {
        this.degraded = true
        this.log('warn', `${this.backend.describe} cannot count rate limits right now; each relay counts its own requests until it answers`, { error: (err as Error).message })
      }
      return 'local'
    } finally {
      clearTimeout(timer)
    }
  }
}
