/**
 * Name ownership in Redis, shared by every relay of a cluster, with the rules of
 * names.json (names.ts): a name belongs to the owner that first held it; a random name
 * stays its owner's while an agent holds it anywhere in the cluster and for 7 days
 * after, a requested name for 90 days; one owner holds at most 256 names.
 *
 * Each claim is one Lua script, so two relays claiming one name at once cannot both
 * win. "Held anywhere" is the presence of the name (cluster/presence.ts): a name some
 * relay still announces never expires.
 *
 * Keys (all under one hash tag, so a Redis Cluster keeps them on one slot):
 *   {gw}:names        hash   name → {"owner","random","seen"}
 *   {gw}:o:<owner>    set    the names of one owner (the cap counts them)
 *   {gw}:p:<name>     zset   relay id → presence expiry (ms)
 *
 * TCP ports (tcp endpoints) follow the same rules under keys of their own (PORT_KEYS):
 *   {gw}:tcp          hash   port → {"owner","random","seen"}
 *   {gw}:to:<owner>   set    the ports of one owner
 *   {gw}:tp:<port>    zset   relay id → presence expiry (ms) (cluster/tcp-ports.ts)
 */
import type { Redis } from 'ioredis'
import { GwError } from '@gw/protocol'
import { DEFAULT_MAX_NAMES_PER_OWNER, RANDOM_NAME_TTL_MS, REQUESTED_NAME_TTL_MS, randomName, type NameStore } from '../names.js'

export const KEY_PREFIX = '{gw}:'
export const NAMES_KEY = `${KEY_PREFIX}names`

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

type ClaimResult = 'OK' | 'TAKEN' | 'LIMIT' | 'EXISTS'

interface ScriptedRedis extends Redis {
  gwClaim(key: string, ...args: Array<string | number>): Promise<ClaimResult>
  gwTouch(key: string, ...args: Array<string | number>): Promise<number>
  gwForget(key: string, ...args: Array<string | number>): Promise<number>
}

export function defineNameScripts(redis: Redis): void {
  redis.defineCommand('gwClaim', { numberOfKeys: 1, lua: CLAIM })
  redis.defineCommand('gwTouch', { numberOfKeys: 1, lua: TOUCH })
  redis.defineCommand('gwForget', { numberOfKeys: 1, lua: FORGET })
}

/**
 * Where one kind of ownership lives: HTTP and tls names, or TCP ports. Each kind has its
 * own hash, owner sets and presence, so port 5432 and a name "5432" never meet, and the
 * per-owner cap counts names and ports apart, as names.json and tcp-ports.json do.
 */
export interface OwnershipKeys {
  /** hash: name → {"owner","random","seen"} */
  hash: string
  /** set per owner: `<ownerPrefix><owner>` */
  ownerPrefix: string
  /** zset per name, relay id → presence expiry (ms): `<presencePrefix><name>` */
  presencePrefix: string
  /** How the store speaks of one entry in its errors. */
  noun: 'name' | 'port'
  /** zset entry → latest presence expiry (ms) over every relay: what the cluster holds, listed (ports only). */
  live?: string
}

export const NAME_KEYS: OwnershipKeys = { hash: NAMES_KEY, ownerPrefix: `${KEY_PREFIX}o:`, presencePrefix: `${KEY_PREFIX}p:`, noun: 'name' }
export const PORT_KEYS: OwnershipKeys = { hash: `${KEY_PREFIX}tcp`, ownerPrefix: `${KEY_PREFIX}to:`, presencePrefix: `${KEY_PREFIX}tp:`, noun: 'port', live: `${KEY_PREFIX}tcp-live` }

export function unavailable(err: unknown): GwError {
  return new GwError('GW_ERR_CLUSTER_UNAVAILABLE', `the relay cannot reach the cluster's shared state (Redis) right now: ${(err as Error).message}; the agent retries by itself`)
}

export class RedisNameStore implements NameStore {
  /** name → owner, as last read or written here: answers `owner()` without a round trip. */
  private readonly cache = new Map<string, string>()
  private readonly redis: ScriptedRedis
  held: { has(name: string): boolean } = new Set<string>()

  constructor(redis: Redis, private readonly maxPerOwner = DEFAULT_MAX_NAMES_PER_OWNER, private readonly now: () => number = Date.now, readonly keys: OwnershipKeys = NAME_KEYS) {
    defineNameScripts(redis)
    this.redis = redis as ScriptedRedis
  }

  /** Read every owner into the cache, so a relay that starts knows every name at once. */
  async load(): Promise<number> {
    let cursor = '0'
    do {
      const [next, flat] = await this.redis.hscan(this.keys.hash, cursor, 'COUNT', 1000)
      cursor = next
      for (let i = 0; i + 1 < flat.length; i += 2) this.remember(flat[i]!, flat[i + 1]!)
    } while (cursor !== '0')
    return this.cache.size
  }

  private remember(name: string, raw: string | null): string | undefined {
    if (raw === null) {
      this.cache.delete(name)
      return undefined
    }
    try {
      const owner = (JSON.parse(raw) as { owner?: unknown }).owner
      if (typeof owner === 'string') {
        this.cache.set(name, owner)
        return owner
      }
    } catch { /* a foreign value: not ours to read */ }
    return undefined
  }

  owner(name: string): string | undefined {
    return this.cache.get(name)
  }

  /** What a lookup in Redis just said about `name`. */
  learn(name: string, owner: string | undefined): void {
    if (owner === undefined) this.cache.delete(name)
    else this.cache.set(name, owner)
  }

  /** The owner as Redis has it now (and the cache learns it). */
  async fetchOwner(name: string): Promise<string | undefined> {
    return this.remember(name, await this.redis.hget(this.keys.hash, name))
  }

  async claim(name: string, owner: string): Promise<void> {
    const result = await this.run(name, owner, 'claim')
    if (result === 'TAKEN') {
      await this.fetchOwner(name).catch(() => {})
      throw this.keys.noun === 'port'
        ? new GwError('GW_ERR_TCP_PORT_TAKEN', `TCP port ${name} belongs to another authtoken in this relay's cluster; leave the port out for a free one`)
        : new GwError('GW_ERR_NAME_TAKEN', `the name "${name}" belongs to another authtoken; pick another name`)
    }
    if (result === 'LIMIT') this.limit(name)
    this.cache.set(name, owner)
  }

  /**
   * Claim `name`, which the relay chose, for `owner` as a fresh random entry: false when
   * anyone (`owner` too) holds it already. For TCP ports the relay picks from its range.
   */
  async claimFresh(name: string, owner: string): Promise<boolean> {
    const result = await this.run(name, owner, 'random')
    if (result === 'EXISTS') {
      await this.fetchOwner(name).catch(() => {})
      return false
    }
    if (result === 'LIMIT') this.limit(name)
    this.cache.set(name, owner)
    return true
  }

  /** Drop `owner`'s claim on `name` (a port claimed but never listened on). */
  async forget(name: string, owner: string): Promise<void> {
    if (this.cache.get(name) === owner) this.cache.delete(name)
    await this.redis.gwForget(this.keys.hash, name, owner, this.keys.ownerPrefix).catch(() => {})
  }

  async claimRandom(owner: string): Promise<string> {
    for (;;) {
      const name = randomName()
      const result = await this.run(name, owner, 'random')
      if (result === 'EXISTS') continue
      if (result === 'LIMIT') this.limit(name)
      this.cache.set(name, owner)
      return name
    }
  }

  private async run(name: string, owner: string, mode: 'claim' | 'random'): Promise<ClaimResult> {
    try {
      return await this.redis.gwClaim(this.keys.hash, name, owner, this.now(), this.maxPerOwner, RANDOM_NAME_TTL_MS, REQUESTED_NAME_TTL_MS, mode, this.keys.ownerPrefix, this.keys.presencePrefix)
    } catch (err) {
      throw unavailable(err)
    }
  }

  private limit(name: string): never {
    if (this.keys.noun === 'port') {
      throw new GwError('GW_ERR_TCP_PORT_UNAVAILABLE', `cannot claim TCP port ${name}: this authtoken already holds ${this.maxPerOwner} ports; reuse one of them, or ask the relay operator`)
    }
    throw new GwError(
      'GW_ERR_NAME_LIMIT',
      `cannot claim "${name}": this authtoken already holds ${this.maxPerOwner} names; reuse one of them, or ask the relay operator`,
    )
  }

  release(name: string): void {
    this.touch([name])
  }

  /** Names held now count as seen now (a held name's clock starts when its last agent leaves). */
  touch(names: string[]): void {
    if (names.length === 0) return
    this.redis.gwTouch(this.keys.hash, this.now(), ...names).catch(() => {
      // Redis is away: the names stay held (presence), and the next touch sets the time.
    })
  }

  async flush(): Promise<void> {}
}
