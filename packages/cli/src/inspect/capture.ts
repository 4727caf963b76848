/**
 * The capture ring buffer: what the TUI list, the agent API and the web inspector show.
 *
 * It is bounded by bytes, not by entries (`--inspect-db-size`, as ngrok's
 * `inspect_db_size`): one 10 MB upload and a thousand health checks should not cost the
 * same. Each record is charged for its heads, the body bytes it keeps (at most
 * `bodyLimit` per direction; the rest is counted, not kept) and a fixed overhead for the
 * objects around them. When the total goes over, the oldest records go first, even one
 * still in flight; later events for it are then ignored.
 *
 * It reads only the agent's event stream. The `Exchange` it keeps is the agent's own
 * object, which the agent keeps filling in (response, timing), so a record is always as
 * fresh as the exchange; `changes` tells readers when to look again.
 */
import { EventEmitter } from 'node:events'
import type { AgentEvents, Exchange } from '../agent/events.js'

export const DEFAULT_BODY_LIMIT = 64 * 1024
export const DEFAULT_DB_SIZE = 50 * 1024 * 1024
/**
 * What a record costs in memory beyond its header strings and kept body bytes: the
 * exchange and its request, response and timing objects, the two header arrays, the
 * record, the Map entry and the views of its bodies. Measured with a full GC by
 * test/inspect/capture-memory.test.ts, which fails if the ring buffer's real heap and
 * buffer memory passes `dbSize` by more than a slab. The charge is what makes
 * `--inspect-db-size` a bound on memory, as ngrok's `inspect_db_size` is: at 512 bytes
 * the ring held about twice what it was charged (bench/README.md, F17 and F20).
 */
export const RECORD_OVERHEAD = 1024
/** Per header string: V8's string object and its slot in the raw-headers array. */
export const HEADER_STRING_OVERHEAD = 24

export interface CapturedBody {
  /** The kept bytes: at most the body limit. */
  readonly bytes: Buffer
  /** Every byte seen, kept or not. */
  readonly size: number
  readonly truncated: boolean
}

export interface CaptureRecord {
  readonly id: string
  /** Increases by one per record, so readers can tell newer from older. */
  readonly seq: number
  readonly exchange: Exchange
  readonly requestBody: CapturedBody
  readonly responseBody: CapturedBody
  /** `open` until `exchange:end`. */
  readonly state: 'open' | 'done'
  /** What the record is charged in the ring buffer. */
  readonly charged: number
}

export interface CaptureChangeMap {
  add: [CaptureRecord]
  update: [CaptureRecord]
  remove: [string]
  clear: []
}

export interface CaptureOptions {
  /** Body bytes kept per direction; default 64 KiB. */
  bodyLimit?: number
  /** Bytes the ring buffer holds; default 50 MB. */
  dbSize?: number
  /** Off (`--inspect=false`): nothing is recorded. */
  enabled?: boolean
}

export interface Capture {
  readonly enabled: boolean
  readonly bodyLimit: number
  readonly dbSize: number
  /** Bytes charged now; never above `dbSize` once an event has been handled. */
  readonly usedBytes: number
  readonly size: number
  /** Newest first. */
  list(options?: { limit?: number; tunnel?: string; filter?: (record: CaptureRecord) => boolean }): CaptureRecord[]
  get(id: string): CaptureRecord | undefined
  clear(): void
  /** Stop listening to the agent. */
  close(): void
  readonly changes: EventEmitter<CaptureChangeMap>
}

/**
 * Kept body bytes are copied into slabs taken in turn, not into a Buffer each: a small
 * copy from Buffer's shared pool kept the whole 8 KiB pool slab alive with it, so a 1 KiB
 * body held up to 8 KiB (F20). Records leave the ring oldest first, in the order their
 * bytes were written, so a slab is released soon after its last record is evicted.
 */
class SlabStore {
  private slab: Buffer | undefined
  private used = 0

  constructor(private readonly slabSize: number) {}

  /** Copies `chunk` and returns views of the copy (two when it crosses into a new slab). */
  copy(chunk: Buffer, into: Buffer[]): void {
    let offset = 0
    while (offset < chunk.length) {
      if (this.slab === undefined || this.used === this.slab.length) {
        this.slab = Buffer.allocUnsafeSlow(this.slabSize)
        this.used = 0
      }
      const n = Math.min(chunk.length - offset, this.slab.length - this.used)
      chunk.copy(this.slab, this.used, offset, offset + n)
      into.push(this.slab.subarray(this.used, this.used + n))
      this.used += n
      offset += n
    }
  }
}

const EMPTY = Buffer.alloc(0)

class BodyBuffer implements CapturedBody {
  private chunks: Buffer[] = []
  private kept = 0
  private joined: Buffer | undefined
  size = 0

  constructor(
    private readonly limit: number,
    private readonly store: SlabStore,
  ) {}

  /** Returns how many bytes were kept, which the record is charged for. */
  push(chunk: Buffer): number {
    this.size += chunk.length
    const room = this.limit - this.kept
    if (room <= 0 || chunk.length === 0) return 0
    // Copied: the agent may reuse or pool its chunk buffers.
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk
    this.store.copy(part, this.chunks)
    this.kept += part.length
    this.joined = undefined
    return part.length
  }

  get bytes(): Buffer {
    if (this.joined === undefined) {
      this.joined = this.chunks.length === 0 ? EMPTY : this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.kept)
      this.chunks = this.joined.length > 0 ? [this.joined] : []
    }
    return this.joined
  }

  get truncated(): boolean {
    return this.size > this.kept
  }
}

/** The body of a record that has seen none yet: shared, so a GET makes no body objects. */
const NO_BODY: CapturedBody = Object.freeze({ bytes: EMPTY, size: 0, truncated: false })

class Record implements CaptureRecord {
  state: 'open' | 'done' = 'open'
  charged = 0
  /** Dropped or replaced; its slot in the order array is skipped until compacted. */
  removed = false
  headCharge = 0
  /** After a 101 the stream carries WebSocket frames, counted by the agent, not kept. */
  upgraded = false

  requestBody: CapturedBody = NO_BODY
  responseBody: CapturedBody = NO_BODY

  constructor(
    readonly id: string,
    readonly seq: number,
    readonly exchange: Exchange,
  ) {}
}

function headBytes(exchange: Exchange): number {
  const req = exchange.request
  let n = req.method.length + req.target.length + req.httpVersion.length + req.remoteAddress.length + 16
  for (const part of req.rawHeaders) n += part.length + HEADER_STRING_OVERHEAD
  const res = exchange.response
  if (res !== undefined) {
    n += res.statusMessage.length + 16
    for (const part of res.rawHeaders) n += part.length + HEADER_STRING_OVERHEAD
  }
  return n
}

/**
 * @example
 * const capture = createCapture(events, { bodyLimit: 64 * 1024, dbSize: 50e6, enabled: true })
 * capture.changes.on('add', (record) => console.log(record.exchange.request.target))
 */
export function createCapture(events: AgentEvents, options: CaptureOptions = {}): Capture {
  const bodyLimit = Math.max(0, Math.floor(options.bodyLimit ?? DEFAULT_BODY_LIMIT))
  const dbSize = Math.max(0, Math.floor(options.dbSize ?? DEFAULT_DB_SIZE))
  const enabled = options.enabled ?? true
  const records = new Map<string, Record>()
  // Oldest first, from `head`: a Map cannot be walked newest-first without a copy, and
  // the TUI and the API ask for the newest few many times a second.
  let order: Record[] = []
  let head = 0
  const changes = new EventEmitter<CaptureChangeMap>()
  let used = 0
  let seq = 0
  // A slab is at most 1/32 of the ring, so the one being filled is a small share of it.
  const store = new SlabStore(Math.min(1024 * 1024, Math.max(4096, Math.floor(dbSize / 32))))

  function keep(record: Record, which: 'requestBody' | 'responseBody', chunk: Buffer): void {
    let body = record[which]
    if (body === NO_BODY) body = record[which] = new BodyBuffer(bodyLimit, store)
    charge(record, (body as BodyBuffer).push(chunk))
    evict()
  }

  function charge(record: Record, bytes: number): void {
    record.charged += bytes
    used += bytes
  }

  function evict(): void {
    while (used > dbSize && records.size > 0) {
      const oldest = order[head]!
      // Let go of the slot now, not at the next compaction: until then it would keep the
      // record and its bodies' slabs alive, up to as many records again as the ring holds.
      order[head++] = undefined as unknown as Record
      if (oldest.removed) continue
      oldest.removed = true
      records.delete(oldest.id)
      used -= oldest.charged
      changes.emit('remove', oldest.id)
    }
    if (head > 1024 && head * 2 > order.length) {
      order = order.slice(head)
      head = 0
    }
  }

  function recharge(record: Record): void {
    const head = headBytes(record.exchange)
    charge(record, head - record.headCharge)
    record.headCharge = head
  }

  function onStart(exchange: Exchange): void {
    // A replayed or re-sent id replaces the old record rather than sharing its bytes.
    const previous = records.get(exchange.id)
    if (previous !== undefined) {
      previous.removed = true
      records.delete(previous.id)
      used -= previous.charged
    }
    const record = new Record(exchange.id, ++seq, exchange)
    records.set(record.id, record)
    order.push(record)
    charge(record, RECORD_OVERHEAD)
    recharge(record)
    changes.emit('add', record)
    evict()
  }

  function onRequestBody(exchange: Exchange, chunk: Buffer): void {
    const record = records.get(exchange.id)
    if (record === undefined || record.upgraded) return
    keep(record, 'requestBody', chunk)
  }

  function onResponse(exchange: Exchange): void {
    const record = records.get(exchange.id)
    if (record === undefined) return
    if (exchange.response?.status === 101) record.upgraded = true
    recharge(record)
    changes.emit('update', record)
    evict()
  }

  function onResponseBody(exchange: Exchange, chunk: Buffer): void {
    const record = records.get(exchange.id)
    if (record === undefined || record.upgraded) return
    keep(record, 'responseBody', chunk)
  }

  function onEnd(exchange: Exchange): void {
    const record = records.get(exchange.id)
    if (record === undefined) return
    record.state = 'done'
    recharge(record)
    changes.emit('update', record)
    evict()
  }

  if (enabled) {
    events.on('exchange:start', onStart)
    events.on('exchange:request-body', onRequestBody)
    events.on('exchange:response', onResponse)
    events.on('exchange:response-body', onResponseBody)
    events.on('exchange:end', onEnd)
  }

  return {
    enabled,
    bodyLimit,
    dbSize,
    get usedBytes() {
      return used
    },
    get size() {
      return records.size
    },
    list(query = {}) {
      const limit = query.limit ?? Infinity
      const out: CaptureRecord[] = []
      if (limit <= 0) return out
      for (let i = order.length - 1; i >= head && out.length < limit; i--) {
        const record = order[i]!
        if (record.removed) continue
        if (query.tunnel !== undefined && record.exchange.tunnel !== query.tunnel) continue
        if (query.filter !== undefined && !query.filter(record)) continue
        out.push(record)
      }
      return out
    },
    get(id) {
      return records.get(id)
    },
    clear() {
      for (const record of records.values()) record.removed = true
      records.clear()
      order = []
      head = 0
      used = 0
      changes.emit('clear')
    },
    close() {
      events.off('exchange:start', onStart)
      events.off('exchange:request-body', onRequestBody)
      events.off('exchange:response', onResponse)
      events.off('exchange:response-body', onResponseBody)
      events.off('exchange:end', onEnd)
    },
    changes,
  }
}
