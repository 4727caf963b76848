/**
 * Upstream pools: where the agent sends a request, with load balancing, passive
 * ejection and active health checks.
 *
 * How the request handler uses a pool:
 *
 * ```ts
 * const target = pool.pick()                   // throws UpstreamPoolDownError (502) when none is usable
 * try {
 *   const res = await send(target.origin, target.basePath + req.target)
 *   // …stream the response; when it has ended (or failed after the head):
 *   pool.release(target, 'ok')                 // or 'error' for a failure after the head
 * } catch (err) {
 *   pool.release(target, isConnectionError(err) ? 'connect-error' : 'error')
 *   // an idempotent request whose body was not sent may try once more elsewhere:
 *   const other = pool.pick(target)            // excludes `target`
 * }
 * ```
 * `sendWithRetry()` in retry.ts wraps exactly that. Every `pick()` must be paired with
 * one `release()`: least_requests counts requests in flight between the two.
 *
 * - **Selection:** `round_robin` (default), `least_requests` (fewest in flight; ties go
 *   round-robin so load spreads), `random`.
 * - **Passive ejection:** a connection error ejects the target for a back-off that doubles
 *   with each consecutive failure (`ejection.base` up to `ejection.max`); a success resets
 *   it. A pool of one target never ejects it: there is nothing else to try, and the real
 *   connection error is more useful to the user than "pool down".
 * - **Active health checks:** optional; see health-check.ts.
 */
import { createHealthChecker, type HealthCheckConfig } from './health-check.js'
import { UpstreamPoolDownError } from './errors.js'
import { CliError } from '../errors.js'
import { parseTargetAddress } from './target.js'

export type Strategy = 'round_robin' | 'least_requests' | 'random'
export const STRATEGIES: readonly Strategy[] = ['round_robin', 'least_requests', 'random']

export interface UpstreamPoolConfig {
  name: string
  /** Addresses: `3001`, `localhost:3001`, `http://127.0.0.1:3001/base`. */
  targets: readonly string[]
  strategy?: Strategy
  healthCheck?: HealthCheckConfig
  ejection?: { baseMs: number; maxMs: number }
  /** Told when a target turns unhealthy or healthy, or is ejected; for the agent's log. */
  onEvent?: (event: UpstreamEvent) => void
  /** Injectable for tests. */
  clock?: () => number
  random?: () => number
}

export interface UpstreamTarget {
  /** `<pool>#<index>`, stable for logs. */
  readonly id: string
  /** `http://localhost:3001`. */
  readonly origin: string
  /** Prepended to the request target: '' or e.g. `/v2`. */
  readonly basePath: string
  readonly hostname: string
  readonly port: number
  readonly pool: UpstreamPool
  /** Requests picked and not yet released. */
  readonly inflight: number
  /** Active health (true when no health check is configured). */
  readonly healthy: boolean
  /** Epoch ms until which passive ejection keeps the target out; 0 when not ejected. */
  readonly ejectedUntil: number
}

export type ReleaseResult = 'ok' | 'error' | 'connect-error'

export interface UpstreamEvent {
  kind: 'unhealthy' | 'healthy' | 'ejected'
  pool: string
  target: string
  origin: string
  /** For `ejected`: how long, in ms. */
  forMs?: number
}

export interface UpstreamPool {
  readonly name: string
  readonly strategy: Strategy
  readonly targets: readonly UpstreamTarget[]
  /** A usable target, counted in flight. `exclude` skips targets already tried. */
  pick(exclude?: UpstreamTarget | ReadonlySet<UpstreamTarget>): UpstreamTarget
  /** End of one picked request. */
  release(target: UpstreamTarget, result: ReleaseResult): void
  /** Run the health checks once now (tests, and start-up before the first interval). */
  checkHealth(): Promise<void>
  close(): void
}

interface MutableTarget {
  id: string
  origin: string
  basePath: string
  hostname: string
  port: number
  pool: UpstreamPool
  inflight: number
  healthy: boolean
  healthStreak: number
  ejectedUntil: number
  failures: number
}

export class UpstreamConfigError extends CliError {
  constructor(message: string) {
    super('GW_ERR_INVALID_UPSTREAM', message)
    this.name = 'UpstreamConfigError'
  }
}

export function createUpstreamPool(config: UpstreamPoolConfig): UpstreamPool {
  const strategy = config.strategy ?? 'round_robin'
  const clock = config.clock ?? Date.now
  const random = config.random ?? Math.random
  const ejection = config.ejection ?? { baseMs: 5_000, maxMs: 60_000 }
  if (config.targets.length === 0) throw new UpstreamConfigError(`upstream pool "${config.name}" has no targets`)
  let rr = 0
  const targets: MutableTarget[] = []

  const pool: UpstreamPool = {
    name: config.name,
    strategy,
    targets: targets as readonly UpstreamTarget[],
    pick: function pick(exclude) {
      const now = clock()
      const n = targets.length
      const usable = (t: MutableTarget): boolean =>
        t.healthy && t.ejectedUntil <= now &&
        (exclude === undefined || (exclude instanceof Set ? !exclude.has(t) : exclude !== t))
      let chosen: MutableTarget | undefined
      if (strategy === 'random') {
        let count = 0
        for (const t of targets) if (usable(t)) count++
        if (count > 0) {
          let k = Math.floor(random() * count)
          for (const t of targets) {
            if (usable(t) && k-- === 0) {
              chosen = t
              break
            }
          }
        }
      } else {
        const start = rr++ % n
        for (let i = 0; i < n; i++) {
          const t = targets[(start + i) % n]!
          if (!usable(t)) continue
          if (strategy === 'round_robin') {
            chosen = t
            break
          }
          if (!chosen || t.inflight < chosen.inflight) chosen = t
        }
      }
      if (!chosen) {
        const unhealthy = targets.filter((t) => !t.healthy).length
        const ejected = targets.filter((t) => t.ejectedUntil > now).length
        throw new UpstreamPoolDownError(config.name, `${n} target${n === 1 ? '' : 's'}: ${unhealthy} failing health checks, ${ejected} ejected after connection errors`)
      }
      chosen.inflight++
      return chosen as UpstreamTarget
    },
    release: function release(target, result) {
      const t = target as MutableTarget
      if (t.pool !== pool) throw new Error(`target ${t.id} does not belong to pool ${config.name}`)
      if (t.inflight > 0) t.inflight--
      if (result === 'connect-error') {
        t.failures++
        if (targets.length > 1) {
          const forMs = Math.min(ejection.maxMs, ejection.baseMs * 2 ** (t.failures - 1))
          t.ejectedUntil = clock() + forMs
          config.onEvent?.({ kind: 'ejected', pool: config.name, target: t.id, origin: t.origin, forMs })
        }
      } else if (result === 'ok') {
        t.failures = 0
        t.ejectedUntil = 0
      }
    },
    checkHealth: () => checker?.runOnce() ?? Promise.resolve(),
    close() {
      checker?.stop()
    },
  }

  config.targets.forEach((address, i) => {
    const parsed = parseTargetAddress(address)
    if (!parsed) throw new UpstreamConfigError(`upstream pool "${config.name}": ${JSON.stringify(address)} is not a valid address (try localhost:3001 or http://127.0.0.1:3001)`)
    targets.push({
      id: `${config.name}#${i}`,
      origin: parsed.origin,
      basePath: parsed.basePath,
      hostname: parsed.hostname,
      port: parsed.port,
      pool,
      inflight: 0,
      healthy: true,
      healthStreak: 0,
      ejectedUntil: 0,
      failures: 0,
    })
  })

  const checker = config.healthCheck
    ? createHealthChecker(targets, config.healthCheck, (subject) => {
        const t = subject as MutableTarget
        config.onEvent?.({ kind: t.healthy ? 'healthy' : 'unhealthy', pool: config.name, target: t.id, origin: t.origin })
      })
    : undefined
  return pool
}
