/**
 * The relay's connection to Redis (ioredis): up at start or the relay does not start,
 * then reconnecting forever. Commands fail at once while Redis is away (no offline
 * queue), so a request never waits on a Redis that is not there: the relay keeps
 * serving the agents it holds from memory, and says so in the log.
 */
import { Redis } from 'ioredis'
import { RelayError } from '../errors.js'
import type { LogFn } from '../options.js'

/** The URL with any password replaced, for logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(an invalid URL)'
  }
}

export interface RedisConnection {
  readonly redis: Redis
  /** A second connection, for subscriptions (a subscribed connection runs no other command). */
  readonly subscriber: Redis
  /** Called on every return of Redis after an outage (not on the first connection). */
  onReturn(handler: () => void): void
  close(): Promise<void>
}

export async function connectRedis(url: string, log: LogFn, connectTimeoutMs = 5_000): Promise<RedisConnection> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--redis "${redactRedisUrl(url)}" is not a URL; give e.g. redis://127.0.0.1:6379`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--redis must be a redis:// or rediss:// URL, got ${parsed.protocol}`)
  }
  let started = false
  let down = false
  const returnHandlers: Array<() => void> = []
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: connectTimeoutMs,
    // At start one try: a relay pointed at no Redis says so and exits. Later, forever.
    retryStrategy: (times) => (started ? Math.min(200 * times, 2_000) : null),
  })
  let lastError: Error | undefined
  redis.on('error', (err: Error) => {
    lastError = err
    if (started && !down) {
      down = true
      log('error', 'Redis is unreachable; serving the agents held here, and retrying', { redis: redactRedisUrl(url), error: err.message })
    }
  })
  redis.on('close', () => {
    if (started && !down) {
      down = true
      log('error', 'the connection to Redis closed; serving the agents held here, and retrying', { redis: redactRedisUrl(url) })
    }
  })
  redis.on('ready', () => {
    if (!started) return
    if (down) log('info', 'Redis is back; registering this relay\'s names again', { redis: redactRedisUrl(url) })
    down = false
    for (const handler of returnHandlers) handler()
  })
  try {
    await redis.connect()
    await redis.ping()
  } catch (err) {
    redis.disconnect()
    const why = (lastError ?? (err as Error)).message
    throw new RelayError('GW_ERR_RELAY_REDIS', `cannot reach Redis at ${redactRedisUrl(url)}: ${why}; check --redis, and that Redis is running and reachable from this relay`, { cause: err })
  }
  // Subscriptions: ioredis subscribes again by itself after a reconnection.
  const subscriber = redis.duplicate({ enableOfflineQueue: true })
  subscriber.on('error', () => {})
  try {
    await subscriber.connect()
  } catch (err) {
    redis.disconnect()
    subscriber.disconnect()
    throw new RelayError('GW_ERR_RELAY_REDIS', `cannot open a second connection to Redis at ${redactRedisUrl(url)}: ${(err as Error).message}`, { cause: err })
  }
  started = true
  return {
    redis,
    subscriber,
    onReturn: (handler) => void returnHandlers.push(handler),
    close: async () => {
      started = false
      await Promise.all([redis.quit().catch(() => redis.disconnect()), subscriber.quit().catch(() => subscriber.disconnect())])
    },
  }
}
