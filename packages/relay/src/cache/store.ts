/**
 * The relay's shared HTTP cache (RFC 9111): stored responses, in memory, bounded in
 * bytes (lru-cache, least recently used evicted first). The rules of what may be stored
 * and reused come from http-cache-semantics, as a shared cache; cache/exchange.ts applies
 * them to one request.
 *
 * Entries are keyed by tunnel name, scheme and request target, so one tenant never sees
 * another's; each key holds the variants its responses' `Vary` selected. When a name's
 * last agent leaves, its entries go with it (`purge`): a name that later changes hands
 * starts empty.
 *
 * With a directory (`--relay-cache-dir`, cache/disk.ts) every stored response is also
 * written to a file, and the memory tier stays in front: a lookup takes memory's
 * variants first and the directory's for the rest, and a body read from the directory
 * comes back into memory when it fits (`promote`).
 */
import CachePolicy from 'http-cache-semantics'
import { LRUCache } from 'lru-cache'
import { DiskTier, ownerHash, type DiskBody, type DiskEntry } from './disk.js'

export interface CacheOptions {
  /** Bytes of stored responses (bodies and heads) at most. */
  maxBytes: number
  /** Largest response stored, body and head; default the smaller of maxBytes / 8 and 16 MiB. */
  maxEntryBytes?: number
  /** A directory that keeps stored responses across restarts, and its size in bytes (cache/disk.ts). */
  dir?: string
  dirMaxBytes?: number
}

/** --relay-cache-dir-size when it is not given. */
export const DEFAULT_DIR_BYTES = 1024 * 1024 * 1024

export interface Variant {
  policy: CachePolicy
  status: number
  /** The body in memory; undefined for a variant only the directory holds (`disk`). */
  body?: Buffer
  bodyBytes: number
  disk?: DiskEntry
  /** The request headers the response's Vary names (lower case), and the stored request's values of them as one string. */
  vary: string[]
  varyKey: string
  /** The response allows reuse for requests with Authorization or cookies: public, s-maxage or must-revalidate. */
  explicit: boolean
  size: number
}

interface Entry {
  name: string
  variants: Variant[]
  size: number
}

export interface CacheStats {
  /** Answered from the cache without the agent. */
  hits: number
  /** Answered from the cache after the agent said 304 Not Modified. */
  revalidated: number
  /** Sent to the agent for a full response (nothing stored, stale, or another variant). */
  misses: number
  /** Not for the cache: unsafe method, Authorization or cookies, Range, a request body. */
  bypassed: number
  /** Hits that waited for another request's miss of the same URL (request collapsing); part of `hits`. */
  collapsed: number
  stores: number
  evictions: number
  /** Body bytes answered from the cache (hits and revalidations): bytes the agent's link did not carry. */
  servedBytes: number
  /** Bytes held now. */
  bytes: number
  entries: number
  /** The directory's (--relay-cache-dir) figures; undefined without one. */
  disk?: import('./disk.js').DiskStats
  /** Hits and revalidations whose body came from the directory. */
  diskHits: number
}

/** Variants kept per URL; the least recently stored goes first. */
const MAX_VARIANTS = 8
/** What a stored response costs beyond its body and headers (objects, the key). */
const ENTRY_OVERHEAD = 512

export class RelayCache {
  readonly maxEntryBytes: number
  private readonly lru: LRUCache<string, Entry>
  private readonly byName = new Map<string, Set<string>>()
  readonly counts = { hits: 0, revalidated: 0, misses: 0, bypassed: 0, collapsed: 0, stores: 0, evictions: 0, servedBytes: 0, diskHits: 0 }
  /** URLs whose miss is being answered by an agent now, and when it is done (request collapsing). */
  private readonly fills = new Map<string, Promise<void>>()
  readonly disk: DiskTier | undefined

  constructor(options: CacheOptions, log?: ConstructorParameters<typeof DiskTier>[0]['log']) {
    this.disk = options.dir ? new DiskTier({ dir: options.dir, maxBytes: options.dirMaxBytes ?? DEFAULT_DIR_BYTES, ...(log ? { log } : {}) }) : undefined
    this.maxEntryBytes = Math.min(options.maxEntryBytes ?? Math.min(options.maxBytes / 8, 16 * 1024 * 1024), options.maxBytes)
    this.lru = new LRUCache<string, Entry>({
      maxSize: options.maxBytes,
      maxEntrySize: options.maxBytes,
      sizeCalculation: (entry) => Math.max(1, entry.size),
      dispose: (entry, key, reason) => {
        if (reason === 'set') return
        if (reason === 'evict') this.counts.evictions += entry.variants.length
        const keys = this.byName.get(entry.name)
        keys?.delete(key)
        if (keys?.size === 0) this.byName.delete(entry.name)
      },
    })
  }

  static key(name: string, scheme: string, target: string): string {
    return `${name} ${scheme} ${target}`
  }

  /**
   * A miss for `key` goes to the agent now: later misses of it may wait (`filling`) and
   * be answered from what it stores. Returns the function that says it is done (stored
   * or not); calling it again does nothing.
   */
  beginFill(key: string): () => void {
    if (this.fills.has(key)) return () => {}
    let finish!: () => void
    const done = new Promise<void>((resolve) => (finish = resolve))
    this.fills.set(key, done)
    let finished = false
    return () => {
      if (finished) return
      finished = true
      if (this.fills.get(key) === done) this.fills.delete(key)
      finish()
    }
  }

  /** The miss of `key` in flight, if any. */
  filling(key: string): Promise<void> | undefined {
    return this.fills.get(key)
  }

  /** Read back what the directory holds (before the relay listens). */
  async open(): Promise<void> {
    await this.disk?.load()
  }

  async close(): Promise<void> {
    await this.disk?.close()
  }

  /** The stored variants of a URL: memory's, then the directory's (those `owner` stored) for other Vary values. */
  variants(key: string, owner: string): readonly Variant[] {
    const memory = this.lru.get(key)?.variants ?? []
    if (!this.disk) return memory
    const onDisk = this.disk.variants(key, ownerHash(owner)).filter((d) => !memory.some((v) => v.varyKey === d.varyKey))
    if (onDisk.length === 0) return memory
    return [...memory, ...onDisk.map((disk): Variant => ({
      policy: disk.policy, status: disk.status, bodyBytes: disk.bodyBytes, disk, vary: disk.vary, varyKey: disk.varyKey, explicit: disk.explicit, size: disk.size,
    }))]
  }

  /** Open a directory variant's body; undefined when its file is gone or corrupt (then removed). */
  openBody(variant: Variant): Promise<DiskBody | undefined> {
    return variant.disk && this.disk ? this.disk.open(variant.disk) : Promise.resolve(undefined)
  }

  /**
   * Store a response (replacing the variant with the same Vary values), and write it to
   * the directory. False when it is too large.
   */
  store(key: string, name: string, owner: string, variant: Omit<Variant, 'size' | 'bodyBytes' | 'disk'> & { body: Buffer }, headerBytes: number): boolean {
    if (!this.storeInMemory(key, name, variant, headerBytes)) return false
    this.disk?.write(key, name, ownerHash(owner), { ...variant, headerBytes })
    return true
  }

  /** A body read from the directory, kept in memory again: memory's variant, or undefined when it does not fit. */
  promote(variant: Variant, key: string, name: string, body: Buffer): Variant | undefined {
    if (!variant.disk) return undefined
    if (!this.storeInMemory(key, name, { policy: variant.policy, status: variant.status, body, vary: variant.vary, varyKey: variant.varyKey, explicit: variant.explicit }, variant.disk.headerBytes)) return undefined
    return this.lru.peek(key)?.variants.find((v) => v.varyKey === variant.varyKey)
  }

  private storeInMemory(key: string, name: string, variant: Omit<Variant, 'size' | 'bodyBytes' | 'disk'> & { body: Buffer }, headerBytes: number): boolean {
    const size = variant.body.length + headerBytes + ENTRY_OVERHEAD
    if (size > this.maxEntryBytes) return false
    const old = this.lru.get(key, { updateAgeOnGet: false })
    const variants = (old?.variants ?? []).filter((v) => v.varyKey !== variant.varyKey)
    variants.push({ ...variant, bodyBytes: variant.body.length, size })
    while (variants.length > MAX_VARIANTS) variants.shift()
    const entry: Entry = { name, variants, size: variants.reduce((n, v) => n + v.size, 0) }
    this.lru.set(key, entry)
    if (!this.lru.has(key)) return false
    let keys = this.byName.get(name)
    if (!keys) this.byName.set(name, (keys = new Set()))
    keys.add(key)
    this.counts.stores++
    return true
  }

  /** A variant's policy after a 304: same body, fresher headers. */
  refresh(key: string, variant: Variant, policy: CachePolicy): void {
    const entry = this.lru.get(key)
    if (entry?.variants.includes(variant)) variant.policy = policy
    this.disk?.refresh(key, variant.varyKey, policy)
  }

  remove(key: string, variant?: Variant): void {
    this.disk?.remove(key, variant?.varyKey)
    const entry = this.lru.get(key, { updateAgeOnGet: false })
    if (!entry) return
    if (variant === undefined || entry.variants.length === 1 && entry.variants[0] === variant) {
      this.lru.delete(key)
      return
    }
    const variants = entry.variants.filter((v) => v !== variant)
    this.lru.set(key, { name: entry.name, variants, size: variants.reduce((n, v) => n + v.size, 0) })
  }

  /** Drop every entry of a tunnel name (its last agent left). */
  purge(name: string): void {
    this.disk?.purge(name)
    const keys = this.byName.get(name)
    if (!keys) return
    for (const key of [...keys]) this.lru.delete(key)
    this.byName.delete(name)
  }

  stats(): CacheStats {
    return { ...this.counts, bytes: this.lru.calculatedSize, entries: this.lru.size, ...(this.disk ? { disk: this.disk.stats() } : {}) }
  }
}
