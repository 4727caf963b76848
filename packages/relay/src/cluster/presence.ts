/**
 * Presence: which relay holds an agent for each name, and where the relays are. Each
 * relay announces the names its agents hold with an expiry, and refreshes them (and its
 * own record) every third of the TTL; a relay that dies stops refreshing, and its
 * entries run out after the TTL. A relay that stops cleanly withdraws them at once.
 *
 * Keys:
 *   {gw}:p:<name>   zset    relay id → expiry (ms); the key itself expires with the TTL
 *   {gw}:r:<id>     string  the relay's record (JSON: peer address, agent URLs), with the TTL
 *   {gw}:relays     zset    relay id → expiry (ms)
 *
 * TCP ports have presence of their own ({gw}:tp:<port>, PORT_KEYS), and one more key
 * listing every port some relay holds, so each relay can listen on them all and forward:
 *   {gw}:tcp-live   zset    port → the latest expiry of any relay's presence for it
 */
import type { Redis } from 'ioredis'
import { KEY_PREFIX, NAME_KEYS, type OwnershipKeys } from './redis-names.js'

export interface RelayRecord {
  id: string
  /** host:port of its relay-to-relay listener. */
  peer: string
  /** Where agents may connect to it. */
  agentUrls: string[]
}

export interface Holder {
  record: RelayRecord
  /** When its presence for the name runs out (ms since the epoch). */
  expires: number
}

export interface Located {
  /** The owner's id (`token:<hex>`), or undefined when nobody owns the name. */
  owner: string | undefined
  /** Relays that hold an agent for the name, freshest first. */
  holders: Holder[]
}

const RELAYS_KEY = `${KEY_PREFIX}relays`
const recordKey = (id: string): string => `${KEY_PREFIX}r:${id}`

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

interface PresenceRedis extends Redis {
  gwLocate(names: string, presence: string, name: string, now: number, prefix: string): Promise<Array<string | null | false>>
  gwWithdrawLive(presence: string, live: string, id: string, now: number, name: string): Promise<number>
}

export class Presence {
  private readonly redis: PresenceRedis

  constructor(redis: Redis, readonly record: RelayRecord, readonly ttlMs: number, private readonly now: () => number = Date.now) {
    redis.defineCommand('gwLocate', { numberOfKeys: 2, lua: LOCATE })
    redis.defineCommand('gwWithdrawLive', { numberOfKeys: 2, lua: WITHDRAW_LIVE })
    this.redis = redis as PresenceRedis
  }

  /** This relay holds agents for `names` (HTTP names, or with PORT_KEYS TCP ports) now. */
  async announce(names: Iterable<string>, keys: OwnershipKeys = NAME_KEYS): Promise<void> {
    const expires = this.now() + this.ttlMs
    const pipe = this.redis.pipeline()
    let n = 0
    for (const name of names) {
      n++
      pipe.zadd(keys.presencePrefix + name, expires, this.record.id)
      pipe.pexpire(keys.presencePrefix + name, this.ttlMs)
      if (keys.live) pipe.zadd(keys.live, 'GT', expires, name)
    }
    if (n > 0) await pipe.exec()
  }

  /** This relay no longer holds an agent for `names`. */
  async withdraw(names: Iterable<string>, keys: OwnershipKeys = NAME_KEYS): Promise<void> {
    // ioredis adds defined commands to pipelines too; its types do not say so.
    const pipe = this.redis.pipeline() as ReturnType<Redis['pipeline']> & { gwWithdrawLive(presence: string, live: string, id: string, now: number, name: string): unknown }
    const now = this.now()
    for (const name of names) {
      if (keys.live) pipe.gwWithdrawLive(keys.presencePrefix + name, keys.live, this.record.id, now, name)
      else pipe.zrem(keys.presencePrefix + name, this.record.id)
    }
    await pipe.exec()
  }

  /** The relay's own record, and its presence for every name and port it holds. */
  async refresh(held: Iterable<string>, heldPorts: Iterable<string> = [], portKeys?: OwnershipKeys): Promise<void> {
    const now = this.now()
    const pipe = this.redis.pipeline()
    pipe.set(recordKey(this.record.id), JSON.stringify(this.record), 'PX', this.ttlMs)
    pipe.zadd(RELAYS_KEY, now + this.ttlMs, this.record.id)
    pipe.zremrangebyscore(RELAYS_KEY, '-inf', now)
    if (portKeys?.live) pipe.zremrangebyscore(portKeys.live, '-inf', now)
    await pipe.exec()
    await this.announce(held)
    if (portKeys) await this.announce(heldPorts, portKeys)
  }

  /** Every entry some relay holds now (ports: `keys.live`). */
  async live(keys: OwnershipKeys): Promise<string[]> {
    if (!keys.live) return []
    return this.redis.zrangebyscore(keys.live, this.now(), '+inf')
  }

  async locate(name: string, keys: OwnershipKeys = NAME_KEYS): Promise<Located> {
    const now = this.now()
    const out = await this.redis.gwLocate(keys.hash, keys.presencePrefix + name, name, now, KEY_PREFIX)
    let owner: string | undefined
    if (typeof out[0] === 'string') {
      try {
        const parsed = (JSON.parse(out[0]) as { owner?: unknown }).owner
        if (typeof parsed === 'string') owner = parsed
      } catch { /* not ours */ }
    }
    const holders: Holder[] = []
    for (let i = 1; i + 1 < out.length; i += 2) {
      const record = parseRecord(out[i + 1])
      if (record) holders.push({ record, expires: Number(out[i]) })
    }
    holders.sort((a, b) => b.expires - a.expires)
    return { owner, holders }
  }

  /** The live relays' records. */
  async relays(): Promise<RelayRecord[]> {
    const ids = await this.redis.zrangebyscore(RELAYS_KEY, this.now(), '+inf')
    if (ids.length === 0) return []
    const raw = await this.redis.mget(...ids.map(recordKey))
    return raw.map(parseRecord).filter((r): r is RelayRecord => r !== undefined)
  }

  /** Leave: the record and every presence entry of this relay go at once. */
  async leave(held: Iterable<string>, heldPorts: Iterable<string> = [], portKeys?: OwnershipKeys): Promise<void> {
    const pipe = this.redis.pipeline()
    pipe.del(recordKey(this.record.id))
    pipe.zrem(RELAYS_KEY, this.record.id)
    for (const name of held) pipe.zrem(NAME_KEYS.presencePrefix + name, this.record.id)
    await pipe.exec()
    if (portKeys) await this.withdraw(heldPorts, portKeys)
  }
}

function parseRecord(raw: unknown): RelayRecord | undefined {
  if (typeof raw !== 'string') return undefined
  try {
    const r = JSON.parse(raw) as RelayRecord
    if (typeof r.id === 'string' && typeof r.peer === 'string' && Array.isArray(r.agentUrls) && r.agentUrls.every((u) => typeof u === 'string')) return r
  } catch { /* not ours */ }
  return undefined
}
