/**
 * The cluster's shared state in Redis (`--redis`): ClusterBackend (backend.ts) on ioredis.
 * The claim and the rate window are Lua scripts, so two relays at once cannot both win.
 *
 * Keys (all under one hash tag, so a Redis Cluster keeps them on one slot):
 *   {gw}:names        hash    name → {"owner","random","seen"}
 *   {gw}:o:<owner>    set     the names of one owner (the cap counts them)
 *   {gw}:p:<name>     zset    relay id → presence expiry (ms); the key expires with the TTL
 *   {gw}:r:<id>       string  a relay's record (JSON: peer address, agent URLs), with the TTL
 *   {gw}:relays       zset    relay id → expiry (ms)
 *   {gw}:rl:<owner>:<second>  counter of the rate window (rate-limit.ts)
 *   {gw}:config       string  the shared config document (shared-config.ts)
 *
 * ACME (acme/shared-acme.ts):
 *   {gw}:acme:ch:<id>       string  a pending challenge's answer (http-01:<token>, tls-alpn-01:<host>), with its TTL
 *   {gw}:acme:certs         hash    order key (host, or *.<domain>) → JSON {"cert","key"}
 *   {gw}:acme:account       string  the cluster's ACME account key (PEM)
 *   {gw}:acme:lock:<key>    string  the relay ordering that certificate now, with a TTL
 *   {gw}:acme:failed:<key>  string  set for the failure backoff after a failed order
 *   {gw}:acme:orders        zset    one member per order started, scored by its time (the hourly budget)
 *
 * TCP ports follow the rules of names under keys of their own, and one more key lists
 * every port some relay holds, so each relay can listen on them all and forward:
 *   {gw}:tcp          hash    port → {"owner","random","seen"}
 *   {gw}:to:<owner>   set     the ports of one owner
 *   {gw}:tp:<port>    zset    relay id → presence expiry (ms)
 *   {gw}:tcp-live     zset    port → the latest expiry of any relay's presence for it
 *
 * Internal endpoints (`*.internal`) have presence per owner and host, and a live list, so
 * each relay can tell its agents which ones their token's agents serve in the cluster:
 *   {gw}:ip:<owner> <host>  zset  relay id → presence expiry (ms)
 *   {gw}:int-live     zset    `<owner> <host>` → the latest expiry of any relay's presence for it
 */
import type { Redis } from 'ioredis'
import { ACME_ORDER_WINDOW_MS, type AcmeBegin, type ClaimResult, type ClusterBackend, type Holder, type Kind, type Located, type PresenceKind, type RelayRecord } from './backend.js'
import { randomBytes } from 'node:crypto'
import type { RedisConnection } from './redis-connection.js'
import { RANDOM_NAME_TTL_MS, REQUESTED_NAME_TTL_MS } from '../names.js'

export const KEY_PREFIX = '{gw}:'

interface OwnershipKeys {
  hash: string
  ownerPrefix: string
  presencePrefix: string
  live?: string
}

const KEYS: Record<PresenceKind, OwnershipKeys> = {
  name: { hash: `${KEY_PREFIX}names`, ownerPrefix: `${KEY_PREFIX}o:`, presencePrefix: `${KEY_PREFIX}p:` },
  port: { hash: `${KEY_PREFIX}tcp`, ownerPrefix: `${KEY_PREFIX}to:`, presencePrefix: `${KEY_PREFIX}tp:`, live: `${KEY_PREFIX}tcp-live` },
  // No ownership (the entry carries its owner): the hash is never written, so a lookup's owner is nil.
  internal: { hash: `${KEY_PREFIX}int-owners`, ownerPrefix: `${KEY_PREFIX}io:`, presencePrefix: `${KEY_PREFIX}ip:`, live: `${KEY_PREFIX}int-live` },
}

const RELAYS_KEY = `${KEY_PREFIX}relays`
const CONFIG_KEY = `${KEY_PREFIX}config`
const recordKey = (id: string): string => `${KEY_PREFIX}r:${id}`

// The rules of names.ts (NameRegistry.claim and claimFresh), atomic in Redis; "held" is
// live presence in the cluster.
const CLAIM = `
local names, oprefix, pprefix = KEYS[1], ARGV[8], ARGV[9]
local name, owner, now, max = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rttl, qttl, mode = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local function held(n) return redis.call('ZCOUNT', pprefix .. n, now, '+inf') > 0 end
local function expired(e, n)
  local ttl = qttl
  if e.random then ttl = rttl end
  return (not held(n)) and (tonumber(e.seen) or 0) < now - ttl
end
local function drop(n, e)
  redis.call('HDEL', names, n)
  redis.call('SREM', oprefix .. e.owner, n)
end
local random = (mode == 'random')
local raw = redis.call('HGET', names, name)
if raw then
  local e = cjson.decode(raw)
  if expired(e, name) then
    drop(name, e)
    raw = false
  elseif mode == 'random' then
    return 'EXISTS'
  elseif e.owner ~= owner then
    return 'TAKEN'
  else
    random = e.random and true or false
  end
end
if not raw then
  local set = oprefix .. owner
  if redis.call('SCARD', set) >= max then
    for _, n in ipairs(redis.call('SMEMBERS', set)) do
      local r = redis.call('HGET', names, n)
      if not r then
        redis.call('SREM', set, n)
      else
        local e = cjson.decode(r)
        if expired(e, n) then drop(n, e) end
      end
    end
    if redis.call('SCARD', set) >= max then return 'LIMIT' end
  end
  redis.call('SADD', set, name)
end
redis.call('HSET', names, name, cjson.encode({ owner = owner, random = random, seen = now }))
return 'OK'
`

const TOUCH = `
for i = 2, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local e = cjson.decode(raw)
    e.seen = tonumber(ARGV[1])
    redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(e))
  end
end
return #ARGV - 1
`

// A claim made for a port the relay then could not listen on: dropped if still that owner's.
const FORGET = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local e = cjson.decode(raw)
if e.owner ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', ARGV[3] .. e.owner, ARGV[1])
return 1
`

// One round trip: the owner, and each live holder with its record.
const LOCATE = `
local out = { redis.call('HGET', KEYS[1], ARGV[1]) or false }
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '+inf', 'WITHSCORES')
for i = 1, #ids, 2 do
  local rec = redis.call('GET', ARGV[3] .. 'r:' .. ids[i])
  if rec then
    table.insert(out, ids[i + 1])
    table.insert(out, rec)
  end
end
return out
`

// A withdrawn port leaves the live list when no relay holds it any more.
const WITHDRAW_LIVE = `
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf') == 0 then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
`

// The sliding window of rate-limit.ts (backend.ts slidingAdmits, in Lua): GET, GET, then INCR and PEXPIRE when admitted.
const SLIDE = `
local limit, elapsed = tonumber(ARGV[1]), tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev * (1000 - elapsed) / 1000 + cur + 1 > limit then return 0 end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 2500)
return 1
`

// An ACME order starts: not while another relay orders the same key, nor in its failure
// backoff, nor past the cluster's hourly budget; then the lock is taken and the order counted.
const ACME_BEGIN = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'LOCKED' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'BACKOFF' end
local now, window = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 'RATE' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('PEXPIRE', KEYS[3], window)
return 'OK'
`

const ACME_END = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
`

const ACME = {
  challenge: (id: string): string => `${KEY_PREFIX}acme:ch:${id}`,
  certs: `${KEY_PREFIX}acme:certs`,
  account: `${KEY_PREFIX}acme:account`,
  lock: (key: string): string => `${KEY_PREFIX}acme:lock:${key}`,
  failed: (key: string): string => `${KEY_PREFIX}acme:failed:${key}`,
  orders: `${KEY_PREFIX}acme:orders`,
}

interface ScriptedRedis extends Redis {
  gwAcmeBegin(lock: string, failed: string, orders: string, holder: string, ttl: number, perHour: number, now: number, window: number, member: string): Promise<AcmeBegin>
  gwAcmeEnd(lock: string, failed: string, holder: string, backoff: number): Promise<number>
  gwClaim(key: string, ...args: Array<string | number>): Promise<ClaimResult>
  gwTouch(key: string, ...args: Array<string | number>): Promise<number>
  gwForget(key: string, ...args: Array<string | number>): Promise<number>
  gwLocate(names: string, presence: string, name: string, now: number, prefix: string): Promise<Array<string | null | false>>
  gwRate(current: string, previous: string, limit: number, elapsed: number): Promise<number>
}

type Pipeline = ReturnType<Redis['pipeline']> & { gwWithdrawLive(presence: string, live: string, id: string, now: number, name: string): unknown }

function ownerOfRaw(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined
  try {
    const owner = (JSON.parse(raw) as { owner?: unknown }).owner
    if (typeof owner === 'string') return owner
  } catch { /* a foreign value: not ours to read */ }
  return undefined
}

export function parseRecord(raw: unknown): RelayRecord | undefined {
  if (typeof raw !== 'string') return undefined
  try {
    const r = JSON.parse(raw) as RelayRecord
    if (typeof r.id === 'string' && typeof r.peer === 'string' && Array.isArray(r.agentUrls) && r.agentUrls.every((u) => typeof u === 'string')) return r
  } catch { /* not ours */ }
  return undefined
}

export class RedisBackend implements ClusterBackend {
  readonly describe = 'Redis'
  private readonly redis: ScriptedRedis
  private readonly handlers = new Map<string, Array<(message: string) => void>>()

  constructor(private readonly conn: RedisConnection, private readonly now: () => number = Date.now) {
    const redis = conn.redis
    redis.defineCommand('gwClaim', { numberOfKeys: 1, lua: CLAIM })
    redis.defineCommand('gwTouch', { numberOfKeys: 1, lua: TOUCH })
    redis.defineCommand('gwForget', { numberOfKeys: 1, lua: FORGET })
    redis.defineCommand('gwLocate', { numberOfKeys: 2, lua: LOCATE })
    redis.defineCommand('gwWithdrawLive', { numberOfKeys: 2, lua: WITHDRAW_LIVE })
    redis.defineCommand('gwRate', { numberOfKeys: 2, lua: SLIDE })
    redis.defineCommand('gwAcmeBegin', { numberOfKeys: 3, lua: ACME_BEGIN })
    redis.defineCommand('gwAcmeEnd', { numberOfKeys: 2, lua: ACME_END })
    this.redis = redis as ScriptedRedis
    conn.subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.handlers.get(channel) ?? []) handler(message)
    })
  }

  async owners(kind: Kind): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = []
    let cursor = '0'
    do {
      const [next, flat] = await this.redis.hscan(KEYS[kind].hash, cursor, 'COUNT', 1000)
      cursor = next
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const owner = ownerOfRaw(flat[i + 1])
        if (owner !== undefined) out.push([flat[i]!, owner])
      }
    } while (cursor !== '0')
    return out
  }

  async ownerOf(kind: Kind, name: string): Promise<string | undefined> {
    return ownerOfRaw(await this.redis.hget(KEYS[kind].hash, name))
  }

  claim(kind: Kind, name: string, owner: string, mode: 'claim' | 'random', maxPerOwner: number): Promise<ClaimResult> {
    const keys = KEYS[kind]
    return this.redis.gwClaim(keys.hash, name, owner, this.now(), maxPerOwner, RANDOM_NAME_TTL_MS, REQUESTED_NAME_TTL_MS, mode, keys.ownerPrefix, keys.presencePrefix)
  }

  async touch(kind: Kind, names: string[]): Promise<void> {
    if (names.length > 0) await this.redis.gwTouch(KEYS[kind].hash, this.now(), ...names)
  }

  async forget(kind: Kind, name: string, owner: string): Promise<void> {
    await this.redis.gwForget(KEYS[kind].hash, name, owner, KEYS[kind].ownerPrefix)
  }

  async announce(kind: PresenceKind, relay: string, names: string[], ttlMs: number): Promise<void> {
    if (names.length === 0) return
    const keys = KEYS[kind]
    const expires = this.now() + ttlMs
    const pipe = this.redis.pipeline()
    for (const name of names) {
      pipe.zadd(keys.presencePrefix + name, expires, relay)
      pipe.pexpire(keys.presencePrefix + name, ttlMs)
      if (keys.live) pipe.zadd(keys.live, 'GT', expires, name)
    }
    await pipe.exec()
  }

  async withdraw(kind: PresenceKind, relay: string, names: string[]): Promise<void> {
    if (names.length === 0) return
    const keys = KEYS[kind]
    // ioredis adds defined commands to pipelines too; its types do not say so.
    const pipe = this.redis.pipeline() as Pipeline
    const now = this.now()
    for (const name of names) {
      if (keys.live) pipe.gwWithdrawLive(keys.presencePrefix + name, keys.live, relay, now, name)
      else pipe.zrem(keys.presencePrefix + name, relay)
    }
    await pipe.exec()
  }

  async refresh(record: RelayRecord, ttlMs: number): Promise<void> {
    const now = this.now()
    const pipe = this.redis.pipeline()
    pipe.set(recordKey(record.id), JSON.stringify(record), 'PX', ttlMs)
    pipe.zadd(RELAYS_KEY, now + ttlMs, record.id)
    pipe.zremrangebyscore(RELAYS_KEY, '-inf', now)
    pipe.zremrangebyscore(KEYS.port.live!, '-inf', now)
    pipe.zremrangebyscore(KEYS.internal.live!, '-inf', now)
    await pipe.exec()
  }

  async live(kind: PresenceKind): Promise<string[]> {
    const live = KEYS[kind].live
    return live ? this.redis.zrangebyscore(live, this.now(), '+inf') : []
  }

  async locate(kind: PresenceKind, name: string): Promise<Located> {
    const keys = KEYS[kind]
    const out = await this.redis.gwLocate(keys.hash, keys.presencePrefix + name, name, this.now(), KEY_PREFIX)
    const holders: Holder[] = []
    for (let i = 1; i + 1 < out.length; i += 2) {
      const record = parseRecord(out[i + 1])
      if (record) holders.push({ record, expires: Number(out[i]) })
    }
    holders.sort((a, b) => b.expires - a.expires)
    return { owner: ownerOfRaw(out[0]), holders }
  }

  async relays(): Promise<RelayRecord[]> {
    const ids = await this.redis.zrangebyscore(RELAYS_KEY, this.now(), '+inf')
    if (ids.length === 0) return []
    const raw = await this.redis.mget(...ids.map(recordKey))
    return raw.map(parseRecord).filter((r): r is RelayRecord => r !== undefined)
  }

  async leave(relay: string, names: string[], ports: string[], internal: string[] = []): Promise<void> {
    const pipe = this.redis.pipeline()
    pipe.del(recordKey(relay))
    pipe.zrem(RELAYS_KEY, relay)
    for (const name of names) pipe.zrem(KEYS.name.presencePrefix + name, relay)
    await pipe.exec()
    await Promise.all([this.withdraw('port', relay, ports), this.withdraw('internal', relay, internal)])
  }

  async rate(owner: string, rps: number): Promise<boolean> {
    const t = this.now()
    const second = Math.floor(t / 1000)
    return (await this.redis.gwRate(`${KEY_PREFIX}rl:${owner}:${second}`, `${KEY_PREFIX}rl:${owner}:${second - 1}`, rps, t - second * 1000)) === 1
  }

  readConfig(): Promise<string | null> {
    return this.redis.get(CONFIG_KEY)
  }

  async writeConfig(raw: string): Promise<void> {
    await this.redis.set(CONFIG_KEY, raw)
  }

  async acmeChallengeSet(id: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(ACME.challenge(id), value, 'PX', ttlMs)
  }

  acmeChallengeGet(id: string): Promise<string | null> {
    return this.redis.get(ACME.challenge(id))
  }

  async acmeChallengeDelete(id: string): Promise<void> {
    await this.redis.del(ACME.challenge(id))
  }

  async acmeCerts(): Promise<Array<[string, string]>> {
    return Object.entries(await this.redis.hgetall(ACME.certs))
  }

  acmeCertGet(host: string): Promise<string | null> {
    return this.redis.hget(ACME.certs, host)
  }

  async acmeCertSet(host: string, raw: string): Promise<void> {
    await this.redis.hset(ACME.certs, host, raw)
  }

  async acmeCertDelete(host: string): Promise<void> {
    await this.redis.hdel(ACME.certs, host)
  }

  async acmeAccountKey(candidate: string): Promise<string> {
    await this.redis.set(ACME.account, candidate, 'NX')
    return (await this.redis.get(ACME.account)) ?? candidate
  }

  acmeBegin(key: string, holder: string, lockTtlMs: number, perHour: number): Promise<AcmeBegin> {
    const now = this.now()
    return this.redis.gwAcmeBegin(ACME.lock(key), ACME.failed(key), ACME.orders, holder, lockTtlMs, perHour, now, ACME_ORDER_WINDOW_MS, `${now}:${holder}:${key}:${randomBytes(4).toString('hex')}`)
  }

  async acmeLocked(key: string): Promise<boolean> {
    return (await this.redis.exists(ACME.lock(key))) === 1
  }

  async acmeEnd(key: string, holder: string, failedBackoffMs: number): Promise<void> {
    await this.redis.gwAcmeEnd(ACME.lock(key), ACME.failed(key), holder, failedBackoffMs)
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.redis.publish(channel, message)
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    const list = this.handlers.get(channel)
    if (list) list.push(handler)
    else this.handlers.set(channel, [handler])
    if (!list) await this.conn.subscriber.subscribe(channel)
  }

  onReturn(handler: () => void): void {
    this.conn.onReturn(handler)
  }

  close(): Promise<void> {
    return this.conn.close()
  }
}
