/**
 * Rate-limit algorithms, by key, on an injectable clock.
 *
 * - `sliding_window` (ngrok's): the count of the current fixed window plus the previous
 *   window's count weighted by how much of it still overlaps the sliding window. O(1)
 *   memory per key and no burst at window edges.
 * - `token_bucket` (gw's): `capacity` tokens refilled evenly over `rate`; allows bursts
 *   up to capacity and a steady rate after.
 *
 * `take()` either counts the request and returns 0, or returns how many ms until one
 * more request would be allowed, without counting it.
 */
export type Algorithm = 'sliding_window' | 'token_bucket'

export interface RateLimiter {
  take(key: string, now: number): number
  /** Requests left right now, for RateLimit-Remaining. */
  remaining(key: string, now: number): number
  /** Seconds until the budget is fully restored, for RateLimit-Reset. */
  resetSeconds(key: string, now: number): number
  readonly size: number
}

interface Window { start: number; prev: number; curr: number; touched: number }
interface Bucket { tokens: number; at: number; touched: number }

const MAX_KEYS = 100_000

function evict<T extends { touched: number }>(map: Map<string, T>, now: number, idleMs: number): void {
  if (map.size < MAX_KEYS) return
  for (const [k, v] of map) if (now - v.touched > idleMs) map.delete(k)
  // Still full: drop the oldest inserted keys (Map keeps insertion order).
  for (const k of map.keys()) {
    if (map.size < MAX_KEYS * 0.9) break
    map.delete(k)
  }
}

export function createSlidingWindow(capacity: number, windowMs: number): RateLimiter {
  const windows = new Map<string, Window>()
  function roll(w: Window, now: number): void {
    const elapsed = now - w.start
    if (elapsed < windowMs) return
    const windows = Math.floor(elapsed / windowMs)
    w.prev = windows === 1 ? w.curr : 0
    w.curr = 0
    w.start += windows * windowMs
  }
  function get(key: string, now: number): Window {
    let w = windows.get(key)
    if (!w) {
      evict(windows, now, windowMs * 2)
      w = { start: now - (now % windowMs), prev: 0, curr: 0, touched: now }
      windows.set(key, w)
    }
    roll(w, now)
    w.touched = now
    return w
  }
  const count = (w: Window, now: number): number => w.prev * (1 - (now - w.start) / windowMs) + w.curr
  return {
    take(key, now) {
      const w = get(key, now)
      if (count(w, now) + 1 <= capacity) {
        w.curr++
        return 0
      }
      const f = (now - w.start) / windowMs
      if (w.curr + 1 <= capacity && w.prev > 0) {
        // Wait within this window until the previous window's weight has decayed enough.
        const need = 1 - (capacity - w.curr - 1) / w.prev
        return Math.max(1, Math.ceil((need - f) * windowMs))
      }
      // Wait for the next window, where this window's count is the decaying one.
      const needNext = w.curr > 0 ? Math.max(0, 1 - (capacity - 1) / w.curr) : 0
      return Math.max(1, Math.ceil((1 - f) * windowMs + needNext * windowMs))
    },
    remaining(key, now) {
      return Math.max(0, Math.floor(capacity - count(get(key, now), now)))
    },
    resetSeconds(key, now) {
      const w = get(key, now)
      return Math.ceil((w.start + (w.curr > 0 ? 2 : 1) * windowMs - now) / 1000)
    },
    get size() {
      return windows.size
    },
  }
}

export function createTokenBucket(capacity: number, periodMs: number): RateLimiter {
  const perMs = capacity / periodMs
  const buckets = new Map<string, Bucket>()
  function get(key: string, now: number): Bucket {
    let b = buckets.get(key)
    if (!b) {
      evict(buckets, now, periodMs * 2)
      b = { tokens: capacity, at: now, touched: now }
      buckets.set(key, b)
    } else {
      b.tokens = Math.min(capacity, b.tokens + (now - b.at) * perMs)
      b.at = now
    }
    b.touched = now
    return b
  }
  return {
    take(key, now) {
      const b = get(key, now)
      // The epsilon absorbs float error, so waiting exactly the time take() asked for
      // always yields the token.
      if (b.tokens >= 1 - 1e-9) {
        b.tokens = Math.max(0, b.tokens - 1)
        return 0
      }
      return Math.max(1, Math.ceil((1 - b.tokens) / perMs))
    },
    remaining(key, now) {
      return Math.floor(get(key, now).tokens)
    },
    resetSeconds(key, now) {
      return Math.ceil((capacity - get(key, now).tokens) / perMs / 1000)
    },
    get size() {
      return buckets.size
    },
  }
}
