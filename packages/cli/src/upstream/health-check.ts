/**
 * Active health checks: a GET to `path` on each target every `interval`. A target turns
 * unhealthy after `unhealthy_threshold` failures in a row and healthy again after
 * `healthy_threshold` successes, so one slow answer does not flap it. Timers are unref'd:
 * health checks never keep the process alive.
 */
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'

export interface HealthCheckConfig {
  path: string
  intervalMs: number
  timeoutMs: number
  healthyThreshold: number
  unhealthyThreshold: number
  /** Statuses counted as healthy; default 200–399. */
  expectStatus?: (status: number) => boolean
}

export interface HealthCheckSubject {
  origin: string
  healthy: boolean
  healthStreak: number
}

export function probe(origin: string, path: string, timeoutMs: number, expect: (status: number) => boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const url = new URL(path, origin)
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    const req = send(url, { method: 'GET', timeout: timeoutMs, headers: { 'user-agent': 'gw-health-check' }, agent: false }, (res) => {
      res.resume()
      resolve(expect(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy(new Error('health check timed out')))
    req.on('error', () => resolve(false))
    req.end()
  })
}

export function createHealthChecker(
  subjects: readonly HealthCheckSubject[],
  config: HealthCheckConfig,
  onChange: (subject: HealthCheckSubject) => void,
): { stop(): void; runOnce(): Promise<void> } {
  const expect = config.expectStatus ?? ((s: number) => s >= 200 && s < 400)
  let stopped = false
  let running: Promise<void> | undefined

  async function checkOne(s: HealthCheckSubject): Promise<void> {
    const ok = await probe(s.origin, config.path, config.timeoutMs, expect)
    if (stopped) return
    if (ok === s.healthy) {
      s.healthStreak = 0
      return
    }
    s.healthStreak++
    const needed = ok ? config.healthyThreshold : config.unhealthyThreshold
    if (s.healthStreak >= needed) {
      s.healthy = ok
      s.healthStreak = 0
      onChange(s)
    }
  }

  function runOnce(): Promise<void> {
    running ??= Promise.all(subjects.map(checkOne)).then(() => {
      running = undefined
    })
    return running
  }

  const timer = setInterval(() => void runOnce(), config.intervalMs)
  timer.unref()
  // A first check right away, so a target that is down at start-up is known within one
  // probe rather than one interval.
  const first = setTimeout(() => void runOnce(), 0)
  first.unref()
  return {
    runOnce,
    stop() {
      stopped = true
      clearInterval(timer)
      clearTimeout(first)
    },
  }
}
