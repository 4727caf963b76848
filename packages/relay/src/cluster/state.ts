/**
 * The shared state of `gw relay --workers N` without Redis, kept in memory by the primary
 * process, which runs no relay; the workers reach it over node:cluster IPC
 * (ipc-backend.ts). It answers what Redis answers the relays of a cluster (backend.ts),
 * with the same rules:
 *
 * - names and TCP ports: NameRegistry (names.ts), the very code a lone relay runs, kept
 *   in names.json and tcp-ports.json in the state directory, so a restart keeps every
 *   owner; "held" is live presence of any worker;
 * - presence: relay id → expiry per entry (names, ports, internal endpoints), and each
 *   relay's record, with the TTL;
 * - rate windows: one counter per token per second (backend.ts slidingAdmits);
 * - the shared config document, and publish/subscribe to every worker;
 * - ACME: pending challenges (with their TTL), issued certificates, the account key, the
 *   per-certificate order lock and failure backoff, and the hourly order budget
 *   (acme/shared-acme.ts), in memory: each worker also keeps the certificates it gets
 *   in the state directory, so a restart finds them there.
 *
 * One process owns it all, so every call is atomic without scripts.
 */
import { NameRegistry, DEFAULT_MAX_NAMES_PER_OWNER } from '../names.js'
import { GwError } from '@gw/protocol'
import { ACME_ORDER_WINDOW_MS, slidingAdmits, type AcmeBegin, type ClaimResult, type Holder, type Kind, type Located, type PresenceKind, type RelayRecord } from './backend.js'

export interface ClusterStateOptions {
  /** names.json and tcp-ports.json live here; in memory only when omitted. */
  stateDir?: string | undefined
  now?: () => number
}

interface Window {
  second: number
  count: number
  previous: number
}

export class ClusterState {
  private readonly registries: Record<Kind, NameRegistry>
  /** kind → entry → relay id → presence expiry (ms). */
  private readonly presence: Record<PresenceKind, Map<string, Map<string, number>>> = { name: new Map(), port: new Map(), internal: new Map() }
  private readonly records = new Map<string, { record: RelayRecord; expires: number }>()
  private readonly windows = new Map<string, Window>()
  private config: string | null = null
  /** ACME: challenge id → answer and expiry; certificates; the account key; locks and backoffs (key → holder/expiry); order times. */
  private readonly challenges = new Map<string, { value: string; expires: number }>()
  private readonly certs = new Map<string, string>()
  private accountKey: string | undefined
  private readonly acmeLocks = new Map<string, { holder: string; expires: number }>()
  private readonly acmeFailed = new Map<string, number>()
  private acmeOrders: number[] = []
  private readonly now: () => number
  /** Every publish goes to these (each worker's channel). */
  private readonly listeners = new Set<(channel: string, message: string) => void>()

  constructor(options: ClusterStateOptions = {}) {
    this.now = options.now ?? Date.now
    const held = (kind: Kind): { has(name: string): boolean } => ({ has: (name) => this.isHeld(kind, name) })
    this.registries = {
      name: new NameRegistry(options.stateDir, { now: this.now }),
      port: new NameRegistry(options.stateDir, { now: this.now, file: 'tcp-ports.json' }),
    }
    this.registries.name.held = held('name')
    this.registries.port.held = held('port')
  }

  private isHeld(kind: PresenceKind, name: string): boolean {
    const now = this.now()
    for (const expires of this.presence[kind].get(name)?.values() ?? []) if (expires >= now) return true
    return false
  }

  owners(kind: Kind): Array<[string, string]> {
    return this.registries[kind].ownerEntries()
  }

  ownerOf(kind: Kind, name: string): string | undefined {
    return this.registries[kind].owner(name)
  }

  claim(kind: Kind, name: string, owner: string, mode: 'claim' | 'random', maxPerOwner: number): ClaimResult {
    const registry = this.registryFor(kind, maxPerOwner)
    try {
      if (mode === 'random') return registry.claimFresh(name, owner) ? 'OK' : 'EXISTS'
      registry.claim(name, owner)
      return 'OK'
    } catch (err) {
      if (err instanceof GwError && err.code === 'GW_ERR_NAME_TAKEN') return 'TAKEN'
      if (err instanceof GwError && err.code === 'GW_ERR_NAME_LIMIT') return 'LIMIT'
      throw err
    }
  }

  /** The cap is the worker's to say (as each relay passes it to the Lua claim); the registry counts. */
  private registryFor(kind: Kind, maxPerOwner: number): NameRegistry {
    const registry = this.registries[kind]
    registry.maxPerOwner = maxPerOwner > 0 ? maxPerOwner : DEFAULT_MAX_NAMES_PER_OWNER
    return registry
  }

  touch(kind: Kind, names: string[]): void {
    this.registries[kind].touch(names)
  }

  forget(kind: Kind, name: string, owner: string): void {
    this.registries[kind].forget(name, owner)
  }

  announce(kind: PresenceKind, relay: string, names: string[], ttlMs: number): void {
    const expires = this.now() + ttlMs
    for (const name of names) {
      let holders = this.presence[kind].get(name)
      if (!holders) this.presence[kind].set(name, (holders = new Map()))
      holders.set(relay, expires)
    }
  }

  withdraw(kind: PresenceKind, relay: string, names: string[]): void {
    for (const name of names) {
      const holders = this.presence[kind].get(name)
      holders?.delete(relay)
      if (holders?.size === 0) this.presence[kind].delete(name)
    }
  }

  refresh(record: RelayRecord, ttlMs: number): void {
    const now = this.now()
    this.records.set(record.id, { record, expires: now + ttlMs })
    this.expire(now)
  }

  /** Drop what ran out: records, presence entries, old rate windows. */
  private expire(now: number): void {
    for (const [id, { expires }] of this.records) if (expires < now) this.records.delete(id)
    for (const kind of ['name', 'port', 'internal'] as const) {
      for (const [name, holders] of this.presence[kind]) {
        for (const [relay, expires] of holders) if (expires < now) holders.delete(relay)
        if (holders.size === 0) this.presence[kind].delete(name)
      }
    }
    const second = Math.floor(now / 1000)
    for (const [owner, window] of this.windows) if (window.second < second - 1) this.windows.delete(owner)
  }

  live(kind: PresenceKind): string[] {
    return [...this.presence[kind].keys()].filter((name) => this.isHeld(kind, name))
  }

  locate(kind: PresenceKind, name: string): Located {
    const now = this.now()
    const holders: Holder[] = []
    for (const [relay, expires] of this.presence[kind].get(name) ?? []) {
      const entry = this.records.get(relay)
      if (expires >= now && entry && entry.expires >= now) holders.push({ record: entry.record, expires })
    }
    holders.sort((a, b) => b.expires - a.expires)
    // An internal endpoint's entry names its owner: it has no registry.
    return { owner: kind === 'internal' ? undefined : this.registries[kind].owner(name), holders }
  }

  relays(): RelayRecord[] {
    const now = this.now()
    return [...this.records.values()].filter((r) => r.expires >= now).map((r) => r.record)
  }

  leave(relay: string, names: string[], ports: string[], internal: string[] = []): void {
    this.records.delete(relay)
    this.withdraw('name', relay, names)
    this.withdraw('port', relay, ports)
    this.withdraw('internal', relay, internal)
  }

  /** A worker died (kill -9): its record and every presence entry go at once, as a clean leave would. */
  dropRelay(relay: string): void {
    this.records.delete(relay)
    for (const kind of ['name', 'port', 'internal'] as const) this.withdraw(kind, relay, [...this.presence[kind].keys()])
  }

  rate(owner: string, rps: number): boolean {
    const t = this.now()
    const second = Math.floor(t / 1000)
    let window = this.windows.get(owner)
    if (!window || window.second < second - 1) window = { second, count: 0, previous: 0 }
    else if (window.second === second - 1) window = { second, count: 0, previous: window.count }
    this.windows.set(owner, window)
    if (!slidingAdmits(window.previous, window.count, t - second * 1000, rps)) return false
    window.count++
    return true
  }

  readConfig(): string | null {
    return this.config
  }

  writeConfig(raw: string): void {
    this.config = raw
  }

  acmeChallengeSet(id: string, value: string, ttlMs: number): void {
    const now = this.now()
    for (const [other, { expires }] of this.challenges) if (expires < now) this.challenges.delete(other)
    this.challenges.set(id, { value, expires: now + ttlMs })
  }

  acmeChallengeGet(id: string): string | null {
    const entry = this.challenges.get(id)
    return entry && entry.expires >= this.now() ? entry.value : null
  }

  acmeChallengeDelete(id: string): void {
    this.challenges.delete(id)
  }

  acmeCerts(): Array<[string, string]> {
    return [...this.certs]
  }

  acmeCertGet(host: string): string | null {
    return this.certs.get(host) ?? null
  }

  acmeCertSet(host: string, raw: string): void {
    this.certs.set(host, raw)
  }

  acmeCertDelete(host: string): void {
    this.certs.delete(host)
  }

  acmeAccountKey(candidate: string): string {
    this.accountKey ??= candidate
    return this.accountKey
  }

  acmeBegin(key: string, holder: string, lockTtlMs: number, perHour: number): AcmeBegin {
    const now = this.now()
    const lock = this.acmeLocks.get(key)
    if (lock && lock.expires >= now) return 'LOCKED'
    if ((this.acmeFailed.get(key) ?? 0) > now) return 'BACKOFF'
    this.acmeOrders = this.acmeOrders.filter((t) => t > now - ACME_ORDER_WINDOW_MS)
    if (this.acmeOrders.length >= perHour) return 'RATE'
    this.acmeLocks.set(key, { holder, expires: now + lockTtlMs })
    this.acmeOrders.push(now)
    return 'OK'
  }

  acmeLocked(key: string): boolean {
    return (this.acmeLocks.get(key)?.expires ?? 0) >= this.now()
  }

  acmeEnd(key: string, holder: string, failedBackoffMs: number): void {
    if (this.acmeLocks.get(key)?.holder === holder) this.acmeLocks.delete(key)
    if (failedBackoffMs > 0) this.acmeFailed.set(key, this.now() + failedBackoffMs)
    else this.acmeFailed.delete(key)
  }

  publish(channel: string, message: string): void {
    for (const listener of this.listeners) listener(channel, message)
  }

  /** `listener` gets every publish from now on; returns the way to stop. */
  onPublish(listener: (channel: string, message: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Write names.json and tcp-ports.json now. */
  async flush(): Promise<void> {
    await Promise.all([this.registries.name.flush(), this.registries.port.flush()])
  }
}
