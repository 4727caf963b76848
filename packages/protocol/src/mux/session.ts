/**
 * A yamux session over one byte transport (a WebSocket adapter or a TCP socket).
 *
 * Wire format and behaviour follow hashicorp/yamux (spec.md, session.go, stream.go):
 * the agent is the client and opens odd stream ids, the relay opens even ones; a stream
 * opens with SYN, is accepted with ACK, half-closes with FIN and aborts with RST.
 *
 * The session never emits 'error': every way the link can die (transport end or error,
 * keepalive timeout, a malformed frame, close()) ends in one 'close' event, and every
 * open stream is destroyed with the same error. A normal GoAway from the peer emits
 * 'goaway' once: it opens no more streams of ours, and its open ones finish.
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { MuxError, type ErrorCode } from '../errors.js'
import { FrameDecoder } from './frame-decoder.js'
import {
  encodeFrameHeader,
  FrameFlag,
  FrameType,
  GoAwayCode,
  INITIAL_STREAM_WINDOW,
  MAX_UINT32,
} from './frame.js'
import { Stream } from './stream.js'
import { isTerminal, StreamState, type StreamStateValue } from './stream-state.js'

export interface SessionOptions {
  /** True on the agent (odd stream ids), false on the relay (even ids). */
  client: boolean
  /** Receive window per stream; at least the spec's 256 KiB. */
  initialWindow?: number
  /** The receive window may grow up to this on links where the window limits speed. */
  maxWindow?: number
  /**
   * Largest Data frame sent. Incoming frames may be as large as the window we granted
   * (hashicorp sends one frame per write, up to the whole window); beyond it they are a
   * link error (GW_ERR_MUX_WINDOW_EXCEEDED).
   */
  maxFrameSize?: number
  /** Milliseconds between keepalive pings; 0 disables pings and the timeout. */
  keepAliveInterval?: number
  /** Milliseconds without any incoming traffic (pongs included) before the link is declared dead. */
  keepAliveTimeout?: number
  /** Inbound streams held while nobody listens for 'stream'; more are reset. */
  acceptBacklog?: number
  /**
   * Streams we opened that the peer has not ACKed yet, at most; the SYN of a further
   * `open()` waits until one is. hashicorp resets streams beyond its accept backlog (256)
   * and bounds its own un-ACKed opens the same way.
   */
  maxUnackedStreams?: number
  /** Streams open at once, both directions together. */
  maxStreams?: number
}

export interface SessionEventMap {
  stream: [Stream]
  close: [Error | undefined]
  rtt: [number]
  /** The peer sent a normal GoAway: no new streams of ours; its open ones finish. */
  goaway: []
}

export const DEFAULT_MAX_WINDOW = 16 * 1024 * 1024
export const DEFAULT_MAX_FRAME_SIZE = 256 * 1024
export const DEFAULT_KEEPALIVE_INTERVAL = 5_000
export const DEFAULT_KEEPALIVE_TIMEOUT = 15_000
export const DEFAULT_ACCEPT_BACKLOG = 256
export const DEFAULT_MAX_STREAMS = 65_536
export const DEFAULT_MAX_UNACKED_STREAMS = 256

/**
 * Owed ACKs that go out at once, bare, rather than wait to ride on a response. A peer that
 * opens in bursts may be waiting on them: hashicorp's OpenStream blocks once 256 of its
 * streams are un-ACKed, and a 50 ms wait per 256 opens made 1,024 opens take 159 ms.
 */
const ACK_BURST = DEFAULT_MAX_UNACKED_STREAMS / 2

/** Bytes queued on the transport before streams stop sending until it drains. */
const TRANSPORT_HIGH_WATER = 1024 * 1024

/** Link-level codes a peer can cause by sending bad frames; they get GoAway(protocol error). */
const PROTOCOL_CODES = new Set<ErrorCode>([
  'GW_ERR_MUX_PROTOCOL',
  'GW_ERR_MUX_VERSION',
  'GW_ERR_MUX_FRAME_TOO_LARGE',
  'GW_ERR_MUX_WINDOW_EXCEEDED',
])

interface PendingPing {
  sentAt: number
  resolve: ((rtt: number) => void) | undefined
  reject: ((err: Error) => void) | undefined
}

function uncorkTransport(session: Session): void {
  session._uncork()
}

export class Session extends EventEmitter<SessionEventMap> {
  private readonly transport: Duplex
  private readonly isClient: boolean
  private readonly initialWindow: number
  private readonly maxWindow: number
  /** @internal */ readonly _maxFrameSize: number
  private readonly keepAliveInterval: number
  private readonly keepAliveTimeout: number
  private readonly acceptBacklog: number
  private readonly maxStreams: number
  private readonly maxUnacked: number
  /** Our streams whose SYN went out and whose ACK has not come (OPENING), and those whose SYN waits. */
  private unacked = 0
  private synQueue: Stream[] = []

  private readonly streams = new Map<number, Stream>()
  private readonly decoder: FrameDecoder
  private nextStreamId: number
  private backlog: Stream[] = []

  /** Stream receiving the Data frame being decoded, and that frame's flags. */
  private dataStream: Stream | undefined
  private dataFlags = 0

  private corked = false
  private blocked = false
  private drainWaiters: Stream[] = []

  /** Inbound streams whose ACK waits to ride on their first frame (see `streamFor`). */
  private pendingAcks = new Set<Stream>()
  private ackTimer: NodeJS.Timeout | undefined
  private pings = new Map<number, PendingPing>()
  private nextPingId = 1
  private pingTimer: NodeJS.Timeout | undefined
  private watchdog: NodeJS.Timeout | undefined
  private lastReceivedAt = 0
  private lastRtt: number | undefined

  private localGoAway = false
  /** GoAway sent, inbound streams still accepted (goAway({ acceptRacing: true })). */
  private announcedGoAway = false
  private remoteGoAway = false
  private isClosed = false

  constructor(transport: Duplex, options: SessionOptions) {
    super()
    this.transport = transport
    this.isClient = options.client
    this.initialWindow = options.initialWindow ?? INITIAL_STREAM_WINDOW
    if (!Number.isInteger(this.initialWindow) || this.initialWindow < INITIAL_STREAM_WINDOW || this.initialWindow > MAX_UINT32) {
      throw new RangeError(`initialWindow must be an integer of at least ${INITIAL_STREAM_WINDOW} bytes`)
    }
    this.maxWindow = Math.max(options.maxWindow ?? DEFAULT_MAX_WINDOW, this.initialWindow)
    if (this.maxWindow > MAX_UINT32) throw new RangeError('maxWindow must fit in 32 bits')
    this._maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    if (!Number.isInteger(this._maxFrameSize) || this._maxFrameSize < 1 || this._maxFrameSize > MAX_UINT32) {
      throw new RangeError('maxFrameSize must be a positive integer')
    }
    this.keepAliveInterval = options.keepAliveInterval ?? DEFAULT_KEEPALIVE_INTERVAL
    this.keepAliveTimeout = options.keepAliveTimeout ?? DEFAULT_KEEPALIVE_TIMEOUT
    this.acceptBacklog = options.acceptBacklog ?? DEFAULT_ACCEPT_BACKLOG
    this.maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS
    this.maxUnacked = options.maxUnackedStreams ?? DEFAULT_MAX_UNACKED_STREAMS
    if (!(this.maxUnacked >= 1)) throw new RangeError('maxUnackedStreams must be at least 1')
    this.nextStreamId = this.isClient ? 1 : 2

    this.decoder = new FrameDecoder(
      {
        onFrame: (type, flags, streamId, length) => this.onFrame(type, flags, streamId, length),
        onData: (chunk) => this.onData(chunk),
        onDataEnd: () => this.onDataEnd(),
      },
      // A frame larger than any window we can grant can never be admitted; refusing it
      // here stops it before any payload is read. Within that, `_admit` checks the window.
      { maxFrameSize: Math.max(this._maxFrameSize, this.maxWindow) },
    )

    transport.on('data', this.onTransportData)
    transport.on('end', this.onTransportEnd)
    transport.on('error', this.onTransportError)
    transport.on('close', this.onTransportClose)
    transport.on('drain', this.onTransportDrain)
    // A transport that died before we listened will not say so again.
    if (transport.destroyed || transport.readableEnded) process.nextTick(this.onTransportClose)

    // Streams that arrived while nobody listened are handed over to the first listener.
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'stream' && this.backlog.length > 0) process.nextTick(() => this.flushBacklog())
    })

    if (this.keepAliveInterval > 0) {
      this.lastReceivedAt = Date.now()
      // A live but idle peer must get a chance to answer before the timeout fires, so
      // ping at least twice per timeout even when the interval is set longer.
      const period = this.keepAliveTimeout > 0
        ? Math.min(this.keepAliveInterval, Math.max(1, Math.floor(this.keepAliveTimeout / 2)))
        : this.keepAliveInterval
      this.pingTimer = setInterval(() => this.keepAlivePing(), period)
      this.pingTimer.unref()
      if (this.keepAliveTimeout > 0) this.armWatchdog(this.keepAliveTimeout)
      // An early RTT sample lets window auto-tuning work from the first transfer.
      this.keepAlivePing()
    }
  }

  get closed(): boolean {
    return this.isClosed
  }

  get rtt(): number | undefined {
    return this.lastRtt
  }

  get streamCount(): number {
    return this.streams.size
  }

  /** @internal */
  get _transportBlocked(): boolean {
    return this.blocked
  }

  /**
   * Open an outbound stream. The SYN goes out at once, so the peer sees the stream even
   * if we never write, unless `maxUnackedStreams` of ours wait for their ACK: then it
   * waits for one, and writes and `end()` wait with it (nothing is lost; `open()` never
   * blocks and never throws for this).
   */
  open(): Stream {
    if (this.isClosed) throw new MuxError('GW_ERR_MUX_CLOSED', 'cannot open a stream: the link is closed')
    if (this.remoteGoAway) throw new MuxError('GW_ERR_MUX_GOAWAY', 'cannot open a stream: the peer is going away')
    if (this.streams.size >= this.maxStreams) {
      throw new MuxError('GW_ERR_MUX_STREAM_LIMIT', `cannot open a stream: ${this.streams.size} are open`)
    }
    const id = this.nextStreamId
    if (id > MAX_UINT32) throw new MuxError('GW_ERR_MUX_STREAM_LIMIT', 'stream ids on this link are exhausted')
    this.nextStreamId += 2
    const stream = new Stream(this, id, StreamState.QUEUED, this.initialWindow, this.maxWindow)
    this.streams.set(id, stream)
    if (this.unacked < this.maxUnacked) stream._sendSyn()
    else this.synQueue.push(stream)
    return stream
  }

  /** Streams opened here whose SYN waits for the peer to ACK earlier ones. */
  get queuedOpens(): number {
    return this.synQueue.length
  }

  /** Measure the round trip with a ping; resolves with milliseconds. */
  ping(): Promise<number> {
    if (this.isClosed) return Promise.reject(new MuxError('GW_ERR_MUX_CLOSED', 'cannot ping: the link is closed'))
    return new Promise((resolve, reject) => {
      const id = this.takePingId()
      this.pings.set(id, { sentAt: performance.now(), resolve, reject })
      this._sendFrame(FrameType.PING, FrameFlag.SYN, 0, id)
    })
  }

  /**
   * Refuse new inbound streams from now on; streams already open finish normally.
   *
   * `{ acceptRacing: true }` announces the GoAway but still takes the streams the peer
   * opened before it heard: a peer that sees the GoAway opens no more, and a ping sent
   * after it (`drainRacing`) comes back once every such stream has arrived. An agent that
   * leaves this way loses none of the requests the relay sent it meanwhile.
   */
  goAway(options: { acceptRacing?: boolean } = {}): void {
    if (this.isClosed || this.localGoAway || this.announcedGoAway) return
    if (options.acceptRacing) this.announcedGoAway = true
    else this.localGoAway = true
    this._sendFrame(FrameType.GO_AWAY, 0, 0, GoAwayCode.NORMAL)
  }

  /** We announced or sent a GoAway. */
  get goingAway(): boolean {
    return this.localGoAway || this.announcedGoAway
  }

  /** The peer sent a GoAway: it takes no new streams from us. */
  get peerGoingAway(): boolean {
    return this.remoteGoAway
  }

  /**
   * After `goAway({ acceptRacing: true })`: resolves once the peer answered a ping sent
   * after the GoAway, so every stream it opened before hearing of it is here; from then
   * on new inbound streams are refused. Resolves at once on a closed link.
   */
  async drainRacing(): Promise<void> {
    if (this.isClosed) return
    try {
      await this.ping()
    } catch { /* the link closed: nothing more can arrive */ }
    this.localGoAway = true
  }

  /**
   * Tear the link down. Open streams are destroyed with `err` (or GW_ERR_MUX_CLOSED);
   * the peer gets a GoAway saying why, then the transport ends.
   */
  close(err?: Error): void {
    this.shutdown(err, true)
  }

  /** @internal */
  _sendFrame(type: number, flags: number, streamId: number, length: number, parts?: Buffer[]): void {
    const transport = this.transport
    if (this.isClosed || !transport.writable) return
    if (!this.corked) {
      // Frames written in one turn of the event loop leave as one batch (one writev, one
      // ws message). A turn, not a tick: under load every request arrives in its own I/O
      // callback, and flushing per tick cost one write per request on each side of the
      // link; flushing in the check phase after the poll phase batches all of them
      // (bench/README.md, F9). A lone request waits for nothing: the check phase comes
      // right after the callback that wrote.
      this.corked = true
      transport.cork()
      setImmediate(uncorkTransport, this)
    }
    let ok = transport.write(encodeFrameHeader(type, flags, streamId, length))
    if (parts) for (let i = 0; i < parts.length; i++) ok = transport.write(parts[i])
    // A socket's 16 KiB high-water mark is smaller than one frame; obeying it would leave
    // one frame in flight at a time. Streams wait only once a megabyte is queued ('drain'
    // still comes, as the write that returned false armed it).
    if (!ok && transport.writableLength >= TRANSPORT_HIGH_WATER) this.blocked = true
  }

  /** @internal */
  _uncork(): void {
    this.corked = false
    this.transport.uncork()
  }

  /** @internal */
  _waitForDrain(stream: Stream): void {
    this.drainWaiters.push(stream)
  }

  /**
   * The ACK of an inbound stream rides on the stream's first frame (its response, in gw)
   * instead of going out alone: at low load that saves a message and a wake-up on each
   * side per request (sequential latency 0.63 → 0.38 ms in bench/README.md, F2). A peer
   * that waits for the ACK (hashicorp's open timeout) gets a bare one within 50 ms, and a
   * burst of opens (`ACK_BURST` owed at once) is ACKed at once, in this turn's batch.
   */
  private deferAck(stream: Stream): void {
    this.pendingAcks.add(stream)
    if (this.pendingAcks.size >= ACK_BURST) this.flushAcks()
    else this.ackTimer ??= setTimeout(() => this.flushAcks(), 50).unref()
  }

  private flushAcks(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer)
    this.ackTimer = undefined
    // Each send clears the stream's ACK_OWED, which deletes it from the set.
    for (const stream of this.pendingAcks) stream._sendAck(0)
    this.pendingAcks.clear()
  }

  /** @internal A stream's lifecycle moved (stream-state.ts): keep the session's books. */
  _stateChanged(stream: Stream, from: StreamStateValue, to: StreamStateValue): void {
    const { ACK_OWED, OPENING, QUEUED } = StreamState
    if ((from & ACK_OWED) !== 0 && (to & ACK_OWED) === 0) this.pendingAcks.delete(stream)
    // A stream stops counting as un-ACKed when its ACK comes, or when it ends without one:
    // hashicorp never ACKs a stream whose FIN it read before accepting it, and frees the
    // slot when the stream closes, so this side must too.
    const wasOpening = (from & OPENING) !== 0 && !isTerminal(from)
    const isOpening = (to & OPENING) !== 0 && !isTerminal(to)
    if (isOpening && !wasOpening) this.unacked++
    if (wasOpening && !isOpening) {
      this.unacked--
      this.sendQueuedSyns()
    }
    if (!isTerminal(to) || isTerminal(from)) return
    // Finished both ways, or reset: forget it.
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id)
    if ((from & QUEUED) !== 0 && this.synQueue.length > 0) {
      const at = this.synQueue.indexOf(stream)
      if (at !== -1) this.synQueue.splice(at, 1)
    }
    if (this.backlog.length > 0) {
      const at = this.backlog.indexOf(stream)
      if (at !== -1) this.backlog.splice(at, 1)
    }
  }

  private sendQueuedSyns(): void {
    while (this.synQueue.length > 0 && this.unacked < this.maxUnacked && !this.isClosed) {
      this.synQueue.shift()!._sendSyn()
    }
  }

  private onTransportData = (chunk: Buffer): void => {
    if (this.isClosed) return
    if (this.pingTimer) this.lastReceivedAt = Date.now()
    try {
      this.decoder.push(chunk)
    } catch (err) {
      if (err instanceof MuxError) {
        this.shutdown(err, true)
        return
      }
      // A 'stream' or 'data' listener threw while we decoded: the frame stream is now
      // half-processed, so the link cannot go on, but the bug is the caller's to see.
      this.shutdown(new MuxError('GW_ERR_MUX_CLOSED', 'a listener threw while frames were decoded', undefined, { cause: err }), true)
      throw err
    }
  }

  private onTransportEnd = (): void => {
    this.shutdown(new MuxError('GW_ERR_MUX_CLOSED', this.remoteGoAway ? 'the peer went away and closed the link' : 'the peer closed the link'), false)
  }

  private onTransportError = (err: Error): void => {
    // A transport that already knows the link broke the protocol (a text ws message) says so.
    if (err instanceof MuxError) this.shutdown(err, false)
    else this.shutdown(new MuxError('GW_ERR_MUX_CLOSED', `the link failed: ${err.message}`, undefined, { cause: err }), false)
  }

  private onTransportClose = (): void => {
    this.shutdown(new MuxError('GW_ERR_MUX_CLOSED', 'the link closed'), false)
  }

  private onTransportDrain = (): void => {
    this.blocked = false
    const waiters = this.drainWaiters
    if (waiters.length === 0) return
    this.drainWaiters = []
    for (const stream of waiters) {
      if (!stream.destroyed) stream._onDrain()
    }
  }

  private onFrame(type: number, flags: number, streamId: number, length: number): void {
    switch (type) {
      case FrameType.DATA: {
        const stream = this.streamFor(flags, streamId)
        this.dataStream = undefined
        this.dataFlags = flags
        if (!stream) return
        if (!stream._canReceive) {
          throw new MuxError('GW_ERR_MUX_PROTOCOL', `data on stream ${streamId} after its FIN`, streamId)
        }
        if (!stream._admit(length)) {
          throw new MuxError('GW_ERR_MUX_WINDOW_EXCEEDED', `a ${length}-byte frame on stream ${streamId} exceeds its receive window`, streamId)
        }
        this.dataStream = stream
        return
      }
      case FrameType.WINDOW_UPDATE: {
        const stream = this.streamFor(flags, streamId)
        if (!stream) return
        stream._onWindowUpdate(length)
        this.applyCloseFlags(stream, flags)
        return
      }
      case FrameType.PING:
        if (flags === FrameFlag.SYN) this._sendFrame(FrameType.PING, FrameFlag.ACK, 0, length)
        else this.onPong(length)
        return
      case FrameType.GO_AWAY: {
        const first = !this.remoteGoAway
        this.remoteGoAway = true
        if (length === GoAwayCode.PROTOCOL_ERROR) {
          this.shutdown(new MuxError('GW_ERR_MUX_PROTOCOL', 'the peer reported a protocol error and went away'), false)
        } else if (length === GoAwayCode.INTERNAL_ERROR) {
          this.shutdown(new MuxError('GW_ERR_MUX_CLOSED', 'the peer had an internal error and went away'), false)
        } else if (first) {
          // A normal GoAway: the peer takes no new streams but finishes its open ones.
          this.emit('goaway')
        }
        return
      }
    }
  }

  private onData(chunk: Buffer): void {
    this.dataStream?._onData(chunk)
  }

  private onDataEnd(): void {
    const stream = this.dataStream
    this.dataStream = undefined
    if (stream) this.applyCloseFlags(stream, this.dataFlags)
  }

  private applyCloseFlags(stream: Stream, flags: number): void {
    if ((flags & (FrameFlag.ACK | FrameFlag.FIN | FrameFlag.RST)) === 0) return
    if (!stream._onFlags(flags)) {
      throw new MuxError('GW_ERR_MUX_PROTOCOL', `flags 0x${flags.toString(16)} are not allowed on stream ${stream.id} now`, stream.id)
    }
  }

  /** The stream a Data or WindowUpdate frame is for; creates it on SYN. */
  private streamFor(flags: number, streamId: number): Stream | undefined {
    if ((flags & FrameFlag.SYN) === 0) {
      // A frame for a stream we no longer know (we reset it, or it finished) is dropped,
      // as hashicorp does: it was in flight when the stream went away.
      return this.streams.get(streamId)
    }
    const peerParity = this.isClient ? 0 : 1
    if (streamId % 2 !== peerParity) {
      throw new MuxError('GW_ERR_MUX_PROTOCOL', `the peer opened stream ${streamId}, which has our parity`, streamId)
    }
    if (this.streams.has(streamId)) {
      throw new MuxError('GW_ERR_MUX_PROTOCOL', `the peer opened stream ${streamId} twice`, streamId)
    }
    const listening = this.listenerCount('stream') > 0
    if (this.localGoAway || this.streams.size >= this.maxStreams || (!listening && this.backlog.length >= this.acceptBacklog)) {
      this._sendFrame(FrameType.WINDOW_UPDATE, FrameFlag.RST, streamId, 0)
      return undefined
    }
    const stream = new Stream(this, streamId, StreamState.ACK_OWED, this.initialWindow, this.maxWindow)
    this.streams.set(streamId, stream)
    const delta = stream._initialDelta()
    if (delta > 0) stream._sendAck(delta)
    else this.deferAck(stream)
    if (listening && this.backlog.length === 0) {
      this.emit('stream', stream)
      // The listener may have destroyed the stream or the whole session.
      return this.isClosed ? undefined : this.streams.get(streamId)
    }
    // Until someone takes it, a waiting stream's 'error' (the peer resets it, as
    // hashicorp's client does when its open times out) is nobody's: without a listener
    // it would be an uncaught exception, from a peer that may not even have said hello.
    stream.on('error', ignore)
    this.backlog.push(stream)
    return stream
  }

  private flushBacklog(): void {
    while (this.backlog.length > 0 && !this.isClosed && this.listenerCount('stream') > 0) {
      const stream = this.backlog.shift()!
      stream.off('error', ignore)
      this.emit('stream', stream)
    }
  }

  private takePingId(): number {
    const id = this.nextPingId
    this.nextPingId = id >= MAX_UINT32 ? 1 : id + 1
    return id
  }

  private keepAlivePing(): void {
    if (this.isClosed) return
    const id = this.takePingId()
    this.pings.set(id, { sentAt: performance.now(), resolve: undefined, reject: undefined })
    this._sendFrame(FrameType.PING, FrameFlag.SYN, 0, id)
  }

  private onPong(id: number): void {
    const ping = this.pings.get(id)
    if (!ping) return
    this.pings.delete(id)
    const rtt = performance.now() - ping.sentAt
    this.lastRtt = rtt
    // Pings older than this one were lost or overtaken; their timing is meaningless now.
    if (ping.resolve === undefined) {
      for (const [otherId, other] of this.pings) {
        if (other.resolve === undefined && other.sentAt < ping.sentAt) this.pings.delete(otherId)
      }
    }
    ping.resolve?.(rtt)
    this.emit('rtt', rtt)
  }

  private armWatchdog(delay: number): void {
    this.watchdog = setTimeout(() => this.checkWatchdog(), delay)
    this.watchdog.unref()
  }

  /** Re-armed lazily so incoming chunks only stamp a time instead of resetting a timer. */
  private checkWatchdog(): void {
    if (this.isClosed) return
    const idle = Date.now() - this.lastReceivedAt
    if (idle >= this.keepAliveTimeout) {
      this.shutdown(new MuxError('GW_ERR_MUX_KEEPALIVE_TIMEOUT', `no traffic from the peer for ${idle} ms`), false)
      return
    }
    this.armWatchdog(this.keepAliveTimeout - idle)
  }

  /**
   * The one way down. `graceful` sends a GoAway and ends the transport so the peer learns
   * why; when the transport is already dead (or the peer silent) it is destroyed at once.
   */
  private shutdown(err: Error | undefined, graceful: boolean): void {
    if (this.isClosed) return
    const transport = this.transport
    if (graceful && transport.writable) {
      const code = err === undefined
        ? GoAwayCode.NORMAL
        : err instanceof MuxError && PROTOCOL_CODES.has(err.code) ? GoAwayCode.PROTOCOL_ERROR : GoAwayCode.INTERNAL_ERROR
      this._sendFrame(FrameType.GO_AWAY, 0, 0, code)
    }
    this.isClosed = true
    this.decoder.halt()
    if (this.pingTimer) clearInterval(this.pingTimer)
    if (this.watchdog) clearTimeout(this.watchdog)
    if (this.ackTimer) clearTimeout(this.ackTimer)
    this.ackTimer = undefined
    this.pendingAcks.clear()
    this.pingTimer = undefined
    this.watchdog = undefined

    const failure = err ?? new MuxError('GW_ERR_MUX_CLOSED', 'the link was closed')
    // Streams still in the backlog fail quietly: they keep the listener added there.
    this.backlog = []
    this.synQueue = []
    this.drainWaiters = []
    for (const stream of [...this.streams.values()]) stream._onLinkClose(failure)
    this.streams.clear()
    for (const ping of this.pings.values()) ping.reject?.(failure)
    this.pings.clear()

    if (graceful && transport.writable) {
      // Let the GoAway and anything queued leave, but never wait on a stuck peer forever.
      const timer = setTimeout(() => transport.destroy(), 2_000)
      timer.unref()
      transport.end(() => {
        clearTimeout(timer)
        transport.destroy()
      })
    } else {
      transport.destroy()
    }
    this.emit('close', err)
  }
}

function ignore(): void {}
