/**
 * What the relays of a cluster share, and nothing more: the one interface the cluster
 * code (cluster.ts, names, presence, rate limits, shared config, takeovers) talks to.
 * Two implementations:
 *
 * - Redis (`--redis`, redis-backend.ts): every relay of the cluster, on any machine,
 *   shares one Redis; the claim and rate rules are Lua scripts, so they are atomic there;
 * - the primary process (`gw relay --workers N` without `--redis`, ipc-backend.ts): the
 *   workers of one machine ask the primary over node:cluster IPC, and the primary keeps
 *   the state in memory (state.ts), with the name rules of names.ts (NameRegistry, the
 *   same code a lone relay runs) and names.json in the state directory.
 *
 * Every call may fail (Redis away, the primary slow to answer): the cluster code treats a
 * failure as the shared state being away, as it always did for Redis.
 */

/** HTTP names (and tls names), or TCP ports: owned, counted and held apart. */
export type Kind = 'name' | 'port'

/**
 * What presence is kept for: names and ports, and internal endpoints (`<owner> <host>`,
 * e.g. `token:ab12… api.internal` or `token:ab12… tcp://camera.internal:22`), which have
 * no ownership of their own (the owner is part of the entry) and a live list of their own.
 */
export type PresenceKind = Kind | 'internal'

/** What a claim says: done, another owner's, the owner's cap reached, or (a fresh claim) already someone's. */
export type ClaimResult = 'OK' | 'TAKEN' | 'LIMIT' | 'EXISTS'

/** What `acmeBegin` says. */
export type AcmeBegin = 'OK' | 'LOCKED' | 'BACKOFF' | 'RATE'

/** The ACME orders of the last hour counted for the cluster's budget. */
export const ACME_ORDER_WINDOW_MS = 3600_000

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

export interface ClusterBackend {
  /** How log lines and errors speak of it: "Redis", or "the primary process". */
  readonly describe: string

  /** Every owner: [name, owner] pairs. */
  owners(kind: Kind): Promise<Array<[string, string]>>
  ownerOf(kind: Kind, name: string): Promise<string | undefined>
  /**
   * Claim `name` for `owner` with the rules of names.ts. `claim`: an agent asked for it
   * (TAKEN when another owner has it); `random`: the relay chose it, a fresh entry
   * (EXISTS when anyone has it). LIMIT: the owner holds `maxPerOwner` already.
   */
  claim(kind: Kind, name: string, owner: string, mode: 'claim' | 'random', maxPerOwner: number): Promise<ClaimResult>
  /** These count as seen now. */
  touch(kind: Kind, names: string[]): Promise<void>
  /** Drop the claim on `name` if it is still `owner`'s. */
  forget(kind: Kind, name: string, owner: string): Promise<void>

  /** Relay `relay` holds agents for `names` for the next `ttlMs`. */
  announce(kind: PresenceKind, relay: string, names: string[], ttlMs: number): Promise<void>
  /** Relay `relay` no longer holds them. */
  withdraw(kind: PresenceKind, relay: string, names: string[]): Promise<void>
  /** The relay's record, live for the next `ttlMs`. */
  refresh(record: RelayRecord, ttlMs: number): Promise<void>
  /** Every entry some relay holds now (ports and internal endpoints; names have no such list). */
  live(kind: PresenceKind): Promise<string[]>
  /** For `internal`, `owner` is undefined: the entry names it. */
  locate(kind: PresenceKind, name: string): Promise<Located>
  /** The live relays' records. */
  relays(): Promise<RelayRecord[]>
  /** The relay and every presence entry of it go at once. */
  leave(relay: string, names: string[], ports: string[], internal?: string[]): Promise<void>

  /** One request of `owner`, whose budget is `rps` per sliding second: admitted? (rate-limit.ts) */
  rate(owner: string, rps: number): Promise<boolean>

  /** The shared config document (shared-config.ts), raw. */
  readConfig(): Promise<string | null>
  writeConfig(raw: string): Promise<void>

  /**
   * ACME, shared by the cluster (acme/shared-acme.ts). A pending challenge (`id`:
   * `http-01:<token>` or `tls-alpn-01:<host>`) is answerable by every relay while its TTL runs.
   */
  acmeChallengeSet(id: string, value: string, ttlMs: number): Promise<void>
  acmeChallengeGet(id: string): Promise<string | null>
  acmeChallengeDelete(id: string): Promise<void>
  /** Issued certificates: host (the order's key, `*.<domain>` for the wildcard) → JSON {cert, key}. */
  acmeCerts(): Promise<Array<[string, string]>>
  acmeCertGet(host: string): Promise<string | null>
  acmeCertSet(host: string, raw: string): Promise<void>
  acmeCertDelete(host: string): Promise<void>
  /** The cluster's one ACME account key: `candidate` if there was none yet, else the one there is. */
  acmeAccountKey(candidate: string): Promise<string>
  /**
   * Start an order for `key` as `holder`: OK (the order lock is `holder`'s for `lockTtlMs`,
   * and the order counts in the cluster's hourly budget), LOCKED (another relay is ordering
   * it), BACKOFF (its last order failed less than its backoff ago), RATE (`perHour` orders
   * in the last hour, cluster-wide).
   */
  acmeBegin(key: string, holder: string, lockTtlMs: number, perHour: number): Promise<AcmeBegin>
  /** Does some relay hold the order lock for `key` now? */
  acmeLocked(key: string): Promise<boolean>
  /** The order for `key` ended: the lock goes if still `holder`'s; `failedBackoffMs` > 0 marks a failure for that long. */
  acmeEnd(key: string, holder: string, failedBackoffMs: number): Promise<void>

  /** Tell every relay (this one too) `message` on `channel`. */
  publish(channel: string, message: string): Promise<void>
  /** Resolves once subscribed; the subscription outlives outages. */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>
  /** Called on every return after an outage (not on the first connection). */
  onReturn(handler: () => void): void
  close(): Promise<void>
}

/** The sliding one-second window of rate-limit.ts: admit one more? `elapsed`: ms of the current second gone. */
export function slidingAdmits(previous: number, current: number, elapsed: number, limit: number): boolean {
  return previous * (1000 - elapsed) / 1000 + current + 1 <= limit
}
