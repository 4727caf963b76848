/**
 * The relay's connection to Redis (ioredis): up at start or the relay does not start,
 * then reconnecting forever. Commands fail at once while Redis is away (no offline
 * queue), so a request never waits on a Redis that is not there: the relay keeps
 * serving the agents it holds from memory, and says so in the log.
 *
 * URLs:
 * - `redis://[[user]:password@]host[:port][/db]`;
 * - `rediss://…` the same over TLS, checked against the system's CAs or `--redis-ca-file`;
 * - `redis-sentinel://[[user]:password@]host[:port][,host[:port]…][/db]#<master name>`
 *   (Lettuce's form): the sentinels (port 26379 by default) are asked for the master, and
 *   asked again when it fails over (ioredis' sentinel support); the password is the
 *   master's.
 */
import { Redis, type RedisOptions } from 'ioredis'
import { RelayError } from '../errors.js'
import type { LogFn } from '../options.js'

/** The URL with any password replaced, for logs and errors. */
export function redactRedisUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(?:([^@/]*)@)?(.*)$/i.exec(url)
  if (!m) return '(an invalid URL)'
  const userinfo = m[2]
  if (userinfo === undefined) return url
  const colon = userinfo.indexOf(':')
  return `${m[1]}${colon === -1 ? '***' : `${userinfo.slice(0, colon)}:***`}@${m[3]}`
}

export interface RedisConnectOptions {
  /** PEM of the CA(s) that signed the certificate of a rediss:// Redis (default: the system's). */
  ca?: string
  connectTimeoutMs?: number
}

/** ioredis options for a URL (see the header), or a RelayError saying what is wrong with it. */
export function redisOptions(url: string, ca: string | undefined): RedisOptions {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
  if (scheme === 'redis-sentinel') return sentinelOptions(url)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--redis "${redactRedisUrl(url)}" is not a URL; give e.g. redis://127.0.0.1:6379`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--redis must be a redis://, rediss:// or redis-sentinel:// URL, got ${parsed.protocol}//`)
  }
  if (parsed.protocol === 'redis:' && ca !== undefined) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--redis-ca-file is for a Redis reached over TLS; give a rediss:// URL, not ${redactRedisUrl(url)}`)
  }
  return parsed.protocol === 'rediss:' ? { tls: { ...(ca !== undefined ? { ca } : {}), servername: parsed.hostname.replace(/^\[|\]$/g, '') } } : {}
}

function sentinelOptions(url: string): RedisOptions {
  const m = /^redis-sentinel:\/\/(?:([^@/#]*)@)?([^/#?]+)(?:\/(\d+))?#([^#]+)$/i.exec(url)
  const bad = (why: string): never => {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--redis "${redactRedisUrl(url)}": ${why}; give e.g. redis-sentinel://10.0.0.2:26379,10.0.0.3:26379#mymaster`)
  }
  if (!m) return bad('a sentinel URL is redis-sentinel://[:password@]host[:port][,host[:port]…][/db]#<master name>')
  const sentinels = m[2]!.split(',').map((hostPort) => {
    const hp = /^\[?([^\]]*?)\]?(?::(\d{1,5}))?$/.exec(hostPort.trim())
    const port = Number(hp?.[2] ?? 26379)
    if (!hp || !hp[1] || port < 1 || port > 65535) return bad(`"${hostPort}" is not host[:port]`)
    return { host: hp[1], port }
  })
  const options: RedisOptions = { sentinels, name: decodeURIComponent(m[4]!), ...(m[3] !== undefined ? { db: Number(m[3]) } : {}) }
  if (m[1] !== undefined) {
    const colon = m[1].indexOf(':')
    const user = decodeURIComponent(colon === -1 ? '' : m[1].slice(0, colon))
    const password = decodeURIComponent(colon === -1 ? m[1] : m[1].slice(colon + 1))
    if (user) options.username = user
    if (password) options.password = password
  }
  return options
}

export interface RedisConnection {
  readonly redis: Redis
  /** A second connection, for subscriptions (a subscribed connection runs no other command). */
  readonly subscriber: Redis
  /** Called on every return of Redis after an outage (not on the first connection). */
  onReturn(handler: () => void): void
  close(): Promise<void>
}

export async function connectRedis(url: string, log: LogFn, options: RedisConnectOptions = {}): Promise<RedisConnection> {
  const extra = redisOptions(url, options.ca)
  const sentinel = extra.sentinels !== undefined
  let started = false
  let down = false
  const returnHandlers: Array<() => void> = []
  // At start one try: a relay pointed at no Redis says so and exits. Later, forever.
  const retry = (times: number): number | null => (started ? Math.min(200 * times, 2_000) : null)
  const common: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    retryStrategy: retry,
    ...(sentinel ? { sentinelRetryStrategy: retry } : {}),
    ...extra,
  }
  const redis = sentinel ? new Redis(common) : new Redis(url, common)
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
    const tlsHint = /certificate|self.signed|CERT_|SSL|TLS|wrong version number/i.test(why)
      ? (options.ca === undefined ? '; to trust a private CA give --redis-ca-file (GW_RELAY_REDIS_CA_FILE)' : '; check that --redis-ca-file holds the CA that signed Redis\'s certificate, for this host name')
      : ''
    throw new RelayError('GW_ERR_RELAY_REDIS', `cannot reach Redis at ${redactRedisUrl(url)}: ${why}${tlsHint}; check --redis, and that Redis is running and reachable from this relay`, { cause: err })
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
