/**
 * `circuit-breaker`: ngrok's fields. Upstream answers are counted in `num_buckets`
 * buckets over `window_duration`; a 5xx (including gw's own 502/504 for an unreachable
 * upstream) is an error. When at least `volume_threshold` requests were seen and the
 * error share reaches `error_threshold`, the breaker trips: requests get 503 for
 * `tripped_duration`. Then one probe request is let through (half-open); its success
 * closes the breaker, its failure trips it again.
 *
 * The breaker needs the agent to call `onHttpResponse` for upstream failures too (with
 * the 502 it is about to send), which the handler contract asks for.
 */
import { respondJson, type ActionDefinition } from '../action.js'
import { addResponseHook, setActionResult, type PolicyState } from '../state.js'

type BreakerState = 'closed' | 'open' | 'half_open'

export const circuitBreaker: ActionDefinition = {
  type: 'circuit-breaker',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const errorThreshold = config.number('error_threshold', 0.5, 0, 1)
    const volumeThreshold = config.int('volume_threshold', 10, 1, 2_000_000_000)
    const windowMs = config.duration('window_duration', 10_000, 1_000, 120_000)
    const trippedMs = config.duration('tripped_duration', 10_000, 1_000, 120_000)
    const numBuckets = config.int('num_buckets', 10, 1, 100)
    const enforce = config.bool('enforce', true)
    config.done()
    const clock = ctx.clock
    const bucketMs = windowMs / numBuckets
    const totals = new Float64Array(numBuckets)
    const errors = new Float64Array(numBuckets)
    let bucketIndex = 0
    let bucketStart = clock()
    let state: BreakerState = 'closed'
    let openedAt = 0
    let probing = false

    function advance(now: number): void {
      let steps = Math.floor((now - bucketStart) / bucketMs)
      if (steps <= 0) return
      bucketStart += steps * bucketMs
      if (steps > numBuckets) steps = numBuckets
      while (steps-- > 0) {
        bucketIndex = (bucketIndex + 1) % numBuckets
        totals[bucketIndex] = 0
        errors[bucketIndex] = 0
      }
    }

    function record(isError: boolean, wasProbe: boolean): void {
      const now = clock()
      if (wasProbe) {
        probing = false
        if (isError) {
          state = 'open'
          openedAt = now
        } else {
          state = 'closed'
          totals.fill(0)
          errors.fill(0)
        }
        return
      }
      advance(now)
      totals[bucketIndex]!++
      if (isError) errors[bucketIndex]!++
      if (state !== 'closed') return
      let total = 0
      let errs = 0
      for (let i = 0; i < numBuckets; i++) {
        total += totals[i]!
        errs += errors[i]!
      }
      if (total >= volumeThreshold && errs / total >= errorThreshold && enforce) {
        state = 'open'
        openedAt = now
      }
    }

    const hookNormal = (s: PolicyState): void => record((s.response?.status ?? 502) >= 500, false)
    const hookProbe = (s: PolicyState): void => record((s.response?.status ?? 502) >= 500, true)

    return function circuitBreakerAction(s) {
      const now = clock()
      if (state === 'open' && now - openedAt >= trippedMs && !probing) {
        state = 'half_open'
        probing = true
        setActionResult(s, 'ngrok', 'circuit_breaker', { tripped: false, state })
        addResponseHook(s, hookProbe)
        return
      }
      if (state !== 'closed') {
        setActionResult(s, 'ngrok', 'circuit_breaker', { tripped: true, state })
        const retry = Math.max(1, Math.ceil((trippedMs - (now - openedAt)) / 1000))
        return respondJson(503, { error: 'circuit_open', message: 'the upstream is failing; the circuit breaker is open' }, ['retry-after', String(retry)])
      }
      setActionResult(s, 'ngrok', 'circuit_breaker', { tripped: false, state })
      addResponseHook(s, hookNormal)
    }
  },
}
