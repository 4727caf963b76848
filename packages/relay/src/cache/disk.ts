/**
 * The relay cache's optional directory (`--relay-cache-dir`): stored responses kept in
 * files behind the memory tier (store.ts), bounded in bytes, surviving a restart.
 *
 * Layout: `DIR/relay-<n>/` is one relay process's part (`n` the first slot whose `lock`
 * names no live process, so the workers of `--workers` and two relays given one
 * directory never write each other's files). Under it, one directory per tunnel name,
 * named by a hash of the name, holds each stored response as two files named by a random
 * id: `<id>.body` (the body as sent) and `<id>.head` (what was stored with it: the URL
 * key, the owner, the cache policy with its response time, the body's length and
 * SHA-256, itself checksummed). Nothing from a Host or URL ever becomes a path.
 *
 * - Writes are queued and done one at a time off the request path: temp file (0600),
 *   then rename, body before head, so a head on disk always has its whole body beside
 *   it. The queue is bounded in bytes; past it a response is kept in memory only.
 * - The index (which id holds which URL and Vary variant) lives in memory and is read
 *   back from the heads at start, most recently used last, so the least recently used
 *   go first when the directory is over its size.
 * - A head that does not parse or whose checksum fails, a body of the wrong length, and
 *   leftovers of a write cut short (temp files, a body without a head) are removed at
 *   start. A body up to 1 MiB is read and checked against its SHA-256 before the hit is
 *   answered, so a corrupt one is a miss like any other. A larger one is checked while
 *   it is streamed to the client: the last chunk is held back until the digest matches,
 *   so a corrupt body is never sent whole (the client sees a cut response, and the
 *   entry is removed).
 * - An entry is served only to the owner (authtoken) that stored it: a name that
 *   changed hands while the relay was down starts empty for its new owner.
 */
import { createHash, randomBytes } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import CachePolicy from 'http-cache-semantics'
import { LRUCache } from 'lru-cache'
import { RelayError } from '../errors.js'

export interface DiskTierOptions {
  dir: string
  /** Bytes of files (bodies and heads) at most. */
  maxBytes: number
  log?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void
}

/** What a `.head` file holds (JSON, after its checksum line). */
interface HeadRecord {
  v: 1
  key: string
  name: string
  /** A hash of the owner (never the owner itself: it is a token's digest). */
  owner: string
  varyKey: string
  vary: string[]
  explicit: boolean
  status: number
  policy: CachePolicy.CachePolicyObject
  bodyBytes: number
  bodySha256: string
  headerBytes: number
}

/** One stored response on disk, as the index knows it. */
export interface DiskEntry {
  id: string
  key: string
  name: string
  owner: string
  varyKey: string
  vary: string[]
  explicit: boolean
  status: number
  policy: CachePolicy
  bodyBytes: number
  bodySha256: string
  headerBytes: number
  /** Bytes on disk: body and head file. */
  size: number
}

export interface DiskStats {
  bytes: number
  entries: number
  writes: number
  /** Writes not made: the queue was full, or the file system refused (logged). */
  writesDropped: number
  /** Files found corrupt or truncated (at start or when read) and removed. */
  corrupt: number
  evictions: number
}

const MAGIC = 'gw-cache-1'
const LOCK = 'lock'
const MAX_SLOTS = 256
/** Read size when streaming a body; also the piece held back until the digest is checked. */
const CHUNK = 64 * 1024
/** Slots this process holds (two relays in one process have one pid). */
const heldSlots = new Set<string>()

interface Job {
  run: () => Promise<void>
  bytes: number
  /** Set when the entry it writes was removed before the write finished. */
  cancelled?: boolean
  key?: string
  name?: string
}

export function ownerHash(owner: string): string {
  return createHash('sha256').update(`gw-cache-owner\0${owner}`).digest('hex').slice(0, 32)
}

function nameDir(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 32)
}

function headText(record: HeadRecord): string {
  const json = JSON.stringify(record)
  return `${MAGIC} ${createHash('sha256').update(json).digest('hex')}\n${json}`
}

function parseHead(text: string): HeadRecord | undefined {
  const nl = text.indexOf('\n')
  if (nl === -1) return undefined
  const [magic, sum] = text.slice(0, nl).split(' ')
  const json = text.slice(nl + 1)
  if (magic !== MAGIC || sum !== createHash('sha256').update(json).digest('hex')) return undefined
  try {
    const r = JSON.parse(json) as HeadRecord
    if (r.v !== 1 || typeof r.key !== 'string' || typeof r.name !== 'string' || typeof r.owner !== 'string' ||
      typeof r.varyKey !== 'string' || !Array.isArray(r.vary) || typeof r.status !== 'number' ||
      !Number.isSafeInteger(r.bodyBytes) || r.bodyBytes < 0 || typeof r.bodySha256 !== 'string' || typeof r.policy !== 'object') return undefined
    return r
  } catch {
    return undefined
  }
}

export class DiskTier {
  /** This process's part of the directory (DIR/relay-<n>). */
  root = ''
  private readonly lru: LRUCache<string, DiskEntry>
  private readonly byKey = new Map<string, Map<string, string>>()
  private readonly byName = new Map<string, Set<string>>()
  private readonly queue: Job[] = []
  private readonly pending = new Set<Job>()
  private pendingBytes = 0
  private readonly maxPendingBytes: number
  private running: Promise<void> | undefined
  private closed = false
  private warned = false
  readonly counts = { writes: 0, writesDropped: 0, corrupt: 0, evictions: 0 }

  constructor(private readonly opts: DiskTierOptions) {
    this.maxPendingBytes = Math.max(1024 * 1024, Math.min(64 * 1024 * 1024, opts.maxBytes / 4))
    this.lru = new LRUCache<string, DiskEntry>({
      maxSize: opts.maxBytes,
      maxEntrySize: opts.maxBytes,
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (entry, id, reason) => {
        if (reason === 'set') return
        if (reason === 'evict') this.counts.evictions++
        const variants = this.byKey.get(entry.key)
        if (variants?.get(entry.varyKey) === id) variants.delete(entry.varyKey)
        if (variants?.size === 0) this.byKey.delete(entry.key)
        const ids = this.byName.get(entry.name)
        ids?.delete(id)
        if (ids?.size === 0) this.byName.delete(entry.name)
        this.enqueue({ bytes: 0, run: () => this.unlinkEntry(entry.name, id) })
      },
    })
  }

  /** Take a slot in the directory and read back what an earlier relay stored there. */
  async load(): Promise<void> {
    const { dir } = this.opts
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      this.root = await this.takeSlot(dir)
    } catch (err) {
      if (err instanceof RelayError) throw err
      throw new RelayError('GW_ERR_RELAY_CACHE_DIR', `--relay-cache-dir ${dir} cannot be used: ${(err as Error).message}; give a directory the relay's user may create and write`)
    }
    const found: Array<{ entry: DiskEntry; mtime: number }> = []
    for (const sub of await readdir(this.root, { withFileTypes: true })) {
      if (!sub.isDirectory()) continue
      const path = join(this.root, sub.name)
      const files = await readdir(path)
      const heads = new Set(files.filter((f) => f.endsWith('.head')).map((f) => f.slice(0, -5)))
      for (const file of files) {
        const id = file.replace(/\.(head|body)$/, '')
        if (file.endsWith('.head')) {
          const loaded = await this.readEntry(path, id, sub.name)
          if (loaded) found.push(loaded)
          else {
            this.counts.corrupt++
            await this.unlinkFiles(path, id)
          }
        } else if (!(file.endsWith('.body') && heads.has(id))) {
          // A temp file, or a body whose head was never written: a write cut short.
          await rm(join(path, file), { force: true, recursive: true })
        }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime)
    for (const { entry } of found) this.index(entry)
    if (found.length > 0) this.opts.log?.('info', 'relay cache read back from its directory', { dir: this.root, entries: this.lru.size, bytes: this.lru.calculatedSize })
  }

  private async takeSlot(dir: string): Promise<string> {
    for (let n = 0; n < MAX_SLOTS; n++) {
      const root = join(dir, `relay-${n}`)
      await mkdir(root, { recursive: true, mode: 0o700 })
      const lock = join(root, LOCK)
      if (heldSlots.has(root)) continue
      try {
        await writeFile(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim())
        if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) continue
        // Left by a relay that is gone (or by this pid before a restart): take it over.
        await writeFile(lock, `${process.pid}\n`, { mode: 0o600 })
      }
      heldSlots.add(root)
      return root
    }
    throw new RelayError('GW_ERR_RELAY_CACHE_DIR', `--relay-cache-dir ${dir}: all ${MAX_SLOTS} slots are held by running relays; give each relay a directory of its own`)
  }

  private async readEntry(path: string, id: string, dirName: string): Promise<{ entry: DiskEntry; mtime: number } | undefined> {
    try {
      const headPath = join(path, `${id}.head`)
      const [text, headStat, bodyStat] = await Promise.all([readFile(headPath, 'utf8'), stat(headPath), stat(join(path, `${id}.body`))])
      const r = parseHead(text)
      if (!r || nameDir(r.name) !== dirName || bodyStat.size !== r.bodyBytes) return undefined
      const policy = CachePolicy.fromObject(r.policy)
      // Neither fresh nor revalidatable: of no use any more.
      if (policy.timeToLive() <= 0 && policy.responseHeaders().etag === undefined && policy.responseHeaders()['last-modified'] === undefined) return undefined
      return {
        entry: { id, key: r.key, name: r.name, owner: r.owner, varyKey: r.varyKey, vary: r.vary, explicit: r.explicit === true, status: r.status, policy, bodyBytes: r.bodyBytes, bodySha256: r.bodySha256, headerBytes: r.headerBytes, size: r.bodyBytes + headStat.size },
        mtime: headStat.mtimeMs,
      }
    } catch {
      return undefined
    }
  }

  private index(entry: DiskEntry): void {
    const old = this.byKey.get(entry.key)?.get(entry.varyKey)
    if (old !== undefined) this.lru.delete(old)
    this.lru.set(entry.id, entry)
    if (!this.lru.has(entry.id)) return
    let variants = this.byKey.get(entry.key)
    if (!variants) this.byKey.set(entry.key, (variants = new Map()))
    variants.set(entry.varyKey, entry.id)
    let ids = this.byName.get(entry.name)
    if (!ids) this.byName.set(entry.name, (ids = new Set()))
    ids.add(entry.id)
  }

  /** The stored variants of a URL that `owner` may be answered with. */
  variants(key: string, owner: string): DiskEntry[] {
    const ids = this.byKey.get(key)
    if (!ids) return []
    const out: DiskEntry[] = []
    for (const id of ids.values()) {
      const entry = this.lru.peek(id)
      if (entry && entry.owner === owner) out.push(entry)
    }
    return out
  }

  /** Queue the write of a stored response. */
  write(key: string, name: string, owner: string, v: { policy: CachePolicy; status: number; body: Buffer; vary: string[]; varyKey: string; explicit: boolean; headerBytes: number }): void {
    if (this.closed) return
    if (this.pendingBytes + v.body.length > this.maxPendingBytes) {
      this.counts.writesDropped++
      return
    }
    const id = randomBytes(16).toString('hex')
    const record: HeadRecord = {
      v: 1, key, name, owner, varyKey: v.varyKey, vary: v.vary, explicit: v.explicit, status: v.status,
      policy: v.policy.toObject(), bodyBytes: v.body.length, bodySha256: createHash('sha256').update(v.body).digest('hex'), headerBytes: v.headerBytes,
    }
    const job: Job = {
      bytes: v.body.length,
      key,
      name,
      run: async () => {
        const path = join(this.root, nameDir(name))
        const head = headText(record)
        try {
          await mkdir(path, { recursive: true, mode: 0o700 })
          await writeAtomic(join(path, `${id}.body`), v.body)
          if (job.cancelled) return void (await this.unlinkFiles(path, id))
          await writeAtomic(join(path, `${id}.head`), head)
        } catch (err) {
          this.counts.writesDropped++
          await this.unlinkFiles(path, id).catch(() => {})
          if (!this.warned) {
            this.warned = true
            this.opts.log?.('warn', 'the relay cache cannot write its directory; responses are kept in memory only until it can', { dir: this.root, error: (err as Error).message })
          }
          return
        }
        if (job.cancelled || this.closed) return void (await this.unlinkFiles(path, id))
        this.warned = false
        this.counts.writes++
        this.index({ id, key, name, owner, varyKey: v.varyKey, vary: v.vary, explicit: v.explicit, status: v.status, policy: v.policy, bodyBytes: v.body.length, bodySha256: record.bodySha256, headerBytes: v.headerBytes, size: v.body.length + Buffer.byteLength(head) })
      },
    }
    this.enqueue(job)
  }

  /** A stored variant's policy after a 304: its head file is written again. */
  refresh(key: string, varyKey: string, policy: CachePolicy): void {
    const id = this.byKey.get(key)?.get(varyKey)
    const entry = id === undefined ? undefined : this.lru.peek(id)
    if (!entry) return
    entry.policy = policy
    const record: HeadRecord = {
      v: 1, key, name: entry.name, owner: entry.owner, varyKey, vary: entry.vary, explicit: entry.explicit, status: entry.status,
      policy: policy.toObject(), bodyBytes: entry.bodyBytes, bodySha256: entry.bodySha256, headerBytes: entry.headerBytes,
    }
    this.enqueue({
      bytes: 0,
      run: async () => {
        if (this.lru.peek(entry.id) !== entry) return
        const path = join(this.root, nameDir(entry.name))
        await writeAtomic(join(path, `${entry.id}.head`), headText(record)).catch(() => {})
        // Removed while it was written: do not leave a head behind.
        if (this.lru.peek(entry.id) !== entry) await this.unlinkFiles(path, entry.id)
      },
    })
  }

  /** Drop a URL's stored variants (or the one with `varyKey`), and any write of them still queued. */
  remove(key: string, varyKey?: string): void {
    for (const job of this.pending) if (job.key === key) job.cancelled = true
    const ids = this.byKey.get(key)
    if (!ids) return
    for (const [vk, id] of [...ids]) if (varyKey === undefined || vk === varyKey) this.lru.delete(id)
  }

  /** Drop every stored response of a tunnel name. */
  purge(name: string): void {
    for (const job of this.pending) if (job.name === name) job.cancelled = true
    for (const id of [...this.byName.get(name) ?? []]) this.lru.delete(id)
    const path = this.root && join(this.root, nameDir(name))
    if (path) this.enqueue({ bytes: 0, run: async () => { await rm(path, { recursive: true, force: true }) } })
  }

  /**
   * Open a stored body for reading; undefined (and the entry removed) when its file is
   * gone or not the length its head says.
   */
  async open(entry: DiskEntry): Promise<DiskBody | undefined> {
    let handle: FileHandle | undefined
    try {
      handle = await open(join(this.root, nameDir(entry.name), `${entry.id}.body`), fsConstants.O_RDONLY)
      const { size } = await handle.stat()
      if (size === entry.bodyBytes) {
        this.lru.get(entry.id) // most recently used
        const now = new Date()
        void utimes(join(this.root, nameDir(entry.name), `${entry.id}.head`), now, now).catch(() => {})
        return new DiskBody(handle, entry, () => this.corrupt(entry))
      }
    } catch {
      // gone: removed below
    }
    await handle?.close().catch(() => {})
    this.corrupt(entry)
    return undefined
  }

  private corrupt(entry: DiskEntry): void {
    this.counts.corrupt++
    this.opts.log?.('warn', 'a relay cache file was corrupt or truncated; removed', { name: entry.name, id: entry.id })
    if (this.lru.peek(entry.id) === entry) this.lru.delete(entry.id)
    else this.enqueue({ bytes: 0, run: () => this.unlinkEntry(entry.name, entry.id) })
  }

  stats(): DiskStats {
    return { ...this.counts, bytes: this.lru.calculatedSize, entries: this.lru.size }
  }

  /** Finish the writes queued (those that fit in `ms`), and let go of the slot. */
  async close(ms = 5_000): Promise<void> {
    if (this.closed) return
    const done = this.running ?? Promise.resolve()
    await Promise.race([done, new Promise((r) => setTimeout(r, ms).unref())])
    this.closed = true
    for (const job of this.queue) job.cancelled = true
    if (this.root) {
      heldSlots.delete(this.root)
      await unlink(join(this.root, LOCK)).catch(() => {})
    }
  }

  private enqueue(job: Job): void {
    this.queue.push(job)
    this.pending.add(job)
    this.pendingBytes += job.bytes
    if (!this.running) this.running = this.drainQueue()
  }

  private async drainQueue(): Promise<void> {
    for (let job = this.queue.shift(); job; job = this.queue.shift()) {
      try {
        if (!this.closed || job.bytes === 0) await job.run()
      } catch (err) {
        this.opts.log?.('debug', 'relay cache file operation failed', { error: (err as Error).message })
      } finally {
        this.pending.delete(job)
        this.pendingBytes -= job.bytes
      }
    }
    this.running = undefined
  }

  private unlinkEntry(name: string, id: string): Promise<void> {
    return this.unlinkFiles(join(this.root, nameDir(name)), id)
  }

  private async unlinkFiles(path: string, id: string): Promise<void> {
    await rm(join(path, `${id}.head`), { force: true })
    await rm(join(path, `${id}.body`), { force: true })
  }
}

/** A stored body open for reading, checked against its digest as it is streamed. */
export class DiskBody {
  private closed = false

  constructor(private readonly handle: FileHandle, readonly entry: DiskEntry, private readonly onCorrupt: () => void) {}

  /**
   * Write the body to `out` and end it. The last chunk is held back until the SHA-256
   * matches; on a mismatch (or a file cut short under us) `out` is destroyed instead,
   * the entry removed, and false returned. `collect` gets the verified body when it is
   * small enough to keep (the memory tier's copy).
   */
  async pipe(out: NodeJS.WritableStream & { destroyed: boolean; destroy(): void }, collect?: { max: number; done: (body: Buffer) => void }): Promise<boolean> {
    const total = this.entry.bodyBytes
    const hash = createHash('sha256')
    const kept: Buffer[] | undefined = collect && total <= collect.max ? [] : undefined
    let held: Buffer | undefined
    let pos = 0
    try {
      while (pos < total) {
        if (out.destroyed) return false
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, total - pos))
        const { bytesRead } = await this.handle.read(buf, 0, buf.length, pos)
        if (bytesRead === 0) throw new Error('the file is shorter than its head says')
        const chunk = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead)
        hash.update(chunk)
        kept?.push(chunk)
        pos += bytesRead
        if (held && !out.write(held)) await drained(out)
        held = chunk
      }
      if (hash.digest('hex') !== this.entry.bodySha256) throw new Error('the body does not match its digest')
    } catch {
      if (out.destroyed) return false
      out.destroy()
      this.onCorrupt()
      return false
    } finally {
      await this.close()
    }
    if (out.destroyed) return false
    if (held) out.write(held)
    out.end()
    if (kept) collect!.done(Buffer.concat(kept, total))
    return true
  }

  /**
   * The whole body, checked before anything is sent: undefined (and the entry removed)
   * when it does not match its digest. For bodies up to PRELOAD_BYTES, so that a corrupt
   * small file is a plain miss; larger ones are streamed by `pipe`.
   */
  async readAll(): Promise<Buffer | undefined> {
    try {
      const body = Buffer.allocUnsafe(this.entry.bodyBytes)
      let pos = 0
      while (pos < body.length) {
        const { bytesRead } = await this.handle.read(body, pos, body.length - pos, pos)
        if (bytesRead === 0) break
        pos += bytesRead
      }
      if (pos === body.length && createHash('sha256').update(body).digest('hex') === this.entry.bodySha256) return body
    } catch {
      // unreadable: corrupt below
    } finally {
      await this.close()
    }
    this.onCorrupt()
    return undefined
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.handle.close().catch(() => {})
  }
}

/** Bodies up to this size are read and checked whole before a hit is answered (`readAll`). */
export const PRELOAD_BYTES = 1024 * 1024

function drained(out: NodeJS.WritableStream & { destroyed: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done)
      out.off('close', done)
      resolve()
    }
    out.on('drain', done)
    out.on('close', done)
  })
}

/** Write a file whole or not at all: a temp file beside it (0600), then rename. */
async function writeAtomic(path: string, data: Buffer | string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(tmp, data, { mode: 0o600 })
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
