/**
 * One yamux stream as a Node Duplex.
 *
 * Flow control is tied to consumption: bytes count as consumed only when they move into
 * the Readable's buffer, which happens only while the reader asks for more (`_read`).
 * A stream nobody reads therefore holds at most one window in `recvQueue` plus the
 * Readable's own buffer, and its writer blocks after one window; the writer wakes on
 * the peer's window update, never on a timer. While the Readable does not flow, what moves
 * into its buffer stops at its highWaterMark, a large frame split there (see `fits`), so a
 * paused stream holds at most its window and one highWaterMark.
 *
 * The lifecycle is one value, `state`, moved only through the pure functions of
 * stream-state.ts. The stream knows its session only as a `StreamHost`, the few things it
 * needs from it, so stream.ts does not import session.ts. The session calls the `_on…`
 * methods; they are public only because the session and the stream are two files.
 */
import { Duplex } from 'node:stream'
import { MuxError } from '../errors.js'
import { FrameFlag, FrameType, INITIAL_STREAM_WINDOW, MAX_UINT32 } from './frame.js'
import {
  afterSend,
  canReceive,
  canSend,
  closeLocal,
  INVALID,
  isTerminal,
  processFlags,
  sendFlags,
  StreamState,
  type StreamStateValue,
} from './stream-state.js'

/** What a stream needs from its session. */
export interface StreamHost {
  readonly closed: boolean
  readonly rtt: number | undefined
  /** @internal */ readonly _maxFrameSize: number
  /** @internal */ readonly _transportBlocked: boolean
  /** @internal */ _sendFrame(type: number, flags: number, streamId: number, length: number, parts?: Buffer[]): void
  /** @internal */ _waitForDrain(stream: Stream): void
  /** @internal Every change of `state`, for the session's bookkeeping (un-ACKed opens, owed ACKs, freeing). */
  _stateChanged(stream: Stream, from: StreamStateValue, to: StreamStateValue): void
}

interface PendingWrite {
  chunks: Buffer[]
  /** Index of the first chunk not fully sent, and how much of it is sent. */
  index: number
  offset: number
  bytes: number
  callback: (err?: Error | null) => void
}

/** A grown window covers this many round trips of the reader's rate. */
const GROWTH_RTTS = 8
/** The reader's rate is measured over at least this many round trips… */
const RATE_EPOCH_RTTS = 4
/** …and at least this long, longer than a burst into kernel buffers takes. */
const MIN_RATE_EPOCH_MS = 20

export class Stream extends Duplex {
  readonly id: number

  /** @internal The lifecycle (stream-state.ts); changed only through `moveTo`. */
  _state: StreamStateValue
  private readonly host: StreamHost
  private readonly maxWindow: number

  // Receive side.
  private recvQueue: Buffer[] = []
  private recvQueued = 0
  /** Bytes the peer may still send before our next update. */
  private recvWindow = INITIAL_STREAM_WINDOW
  /** The window we aim to keep open; grows toward maxWindow on fast links. */
  private recvTarget: number
  /** Bytes consumed by the reader and not yet granted back. */
  private ungranted = 0
  /** Start of the period over which the reader's rate is measured, and the bytes granted in it. */
  private rateEpoch = 0
  private rateBytes = 0
  private readonly initialTarget: number
  /** Half a window had to wait for the reader since the last grant. */
  private backpressured = false
  private wantRead = false
  private eofPushed = false

  // Send side.
  private sendWindow = INITIAL_STREAM_WINDOW
  private pending: PendingWrite | undefined
  /** `_final` ran while the SYN still waited for a slot; FIN follows the SYN. */
  private finalWaiting: ((err?: Error | null) => void) | undefined

  private autoCorked = false
  private waitingDrain = false

  /**
   * @internal Streams come from `Session.open()` (QUEUED) and the session's 'stream'
   * event (ACK_OWED).
   */
  constructor(host: StreamHost, id: number, state: StreamStateValue, initialWindow: number, maxWindow: number) {
    super({ allowHalfOpen: true, writableHighWaterMark: 64 * 1024 })
    this.host = host
    this._state = state
    this.id = id
    this.recvTarget = initialWindow
    this.initialTarget = initialWindow
    this.maxWindow = Math.max(maxWindow, initialWindow)
    this.rateEpoch = performance.now()
  }

  /** Bytes received and held for the reader, in our queue and in the Readable buffer. */
  get receiveBuffered(): number {
    return this.recvQueued + this.readableLength
  }

  /** @internal The extra window announced with SYN/ACK beyond the spec's initial 256 KiB. */
  _initialDelta(): number {
    const delta = this.recvTarget - INITIAL_STREAM_WINDOW
    this.recvWindow += delta
    return delta
  }

  /** @internal The window left for a Data frame's length, checked before any payload. */
  _admit(length: number): boolean {
    if (length > this.recvWindow) return false
    this.recvWindow -= length
    return true
  }

  /** @internal The peer may still send data on this stream. */
  get _canReceive(): boolean {
    return canReceive(this._state)
  }


  private moveTo(next: StreamStateValue): void {
    const from = this._state
    if (from === next) return
    this._state = next
    this.host._stateChanged(this, from, next)
  }

  /** The flags this frame must carry (SYN, or the owed ACK); the state moves on as it leaves. */
  private takeFlags(): number {
    const state = this._state
    const flags = sendFlags(state)
    if (flags !== 0) this.moveTo(afterSend(state))
    return flags
  }

  /** @internal A slot in the peer's backlog is ours: send the SYN, then what waited for it. */
  _sendSyn(): void {
    if ((this._state & StreamState.QUEUED) === 0) return
    const delta = this._initialDelta()
    this.host._sendFrame(FrameType.WINDOW_UPDATE, this.takeFlags(), this.id, delta)
    if (this.pending) this.flush()
    const final = this.finalWaiting
    if (final && !this.pending) {
      this.finalWaiting = undefined
      this._final(final)
    }
  }

  /** @internal The owed ACK goes out now, with the window beyond the initial one (`delta`). */
  _sendAck(delta: number): void {
    if ((this._state & StreamState.ACK_OWED) === 0 || this.host.closed) return
    this.host._sendFrame(FrameType.WINDOW_UPDATE, this.takeFlags(), this.id, delta)
  }

  /**
   * @internal Flags of a frame that arrived (SYN excepted), applied through
   * `processFlags`. False: they are illegal in this state, which is a link error.
   */
  _onFlags(flags: number): boolean {
    const from = this._state
    const next = processFlags(from, flags)
    if (next === INVALID) return false
    if (next === from) return true
    if ((next & StreamState.RESET) !== 0) {
      this.moveTo(next)
      this.destroy(new MuxError('GW_ERR_MUX_STREAM_RESET', `the peer reset stream ${this.id}`, this.id))
      return true
    }
    this.moveTo(next)
    // FIN: no more data will come.
    if (!canReceive(next) && this.recvQueued === 0) this.pushEof()
    return true
  }

  /** @internal A piece of a Data payload, already admitted against the window. */
  _onData(piece: Buffer): void {
    if (this.destroyed || this.eofPushed) return
    let chunk = compact(piece)
    if (this.wantRead && this.recvQueued === 0) {
      const now = this.fits(chunk.length)
      const taken = now < chunk.length ? chunk.subarray(0, now) : chunk
      this.ungranted += taken.length
      this.wantRead = this.push(taken)
      this.maybeGrant()
      if (taken === chunk) return
      chunk = chunk.subarray(now)
    }
    this.recvQueue.push(chunk)
    this.recvQueued += chunk.length
    // Half a window waiting for the reader: it, not the window, is the slower side. (A
    // fast reader queues a little too: a burst is larger than the Readable's 16 KiB mark.)
    if (this.recvQueued >= this.recvTarget / 2) this.backpressured = true
  }

  /** @internal */
  _onWindowUpdate(delta: number): void {
    if (delta === 0) return
    this.sendWindow = Math.min(this.sendWindow + delta, MAX_UINT32)
    if (this.pending) this.flush()
  }

  /** @internal The link is gone; nothing can be sent any more. */
  _onLinkClose(err: Error): void {
    this.moveTo(StreamState.RESET)
    this.destroy(err)
  }

  /** @internal The transport drained; send what waits. */
  _onDrain(): void {
    this.waitingDrain = false
    if (this.pending) this.flush()
  }

  override _read(): void {
    this.wantRead = true
    while (this.recvQueued > 0 && this.wantRead) {
      let chunk = this.recvQueue[0]!
      const now = this.fits(chunk.length)
      if (now < chunk.length) {
        this.recvQueue[0] = chunk.subarray(now)
        chunk = chunk.subarray(0, now)
      } else {
        this.recvQueue.shift()
      }
      this.recvQueued -= chunk.length
      this.ungranted += chunk.length
      this.wantRead = this.push(chunk)
    }
    if (this.recvQueued === 0 && !canReceive(this._state)) this.pushEof()
    this.maybeGrant()
  }

  /**
   * How much of a `length`-byte piece the Readable takes now. All of it while it flows to
   * a consumer (the piece is handed on, not kept). Otherwise (paused, or not yet read) no
   * more than fills its buffer to the highWaterMark: a frame may be as large as the window,
   * and moved whole into a paused Readable it would count as consumed and be granted back,
   * so the stream would hold its window twice (seen with hashicorp over a WebSocket, where
   * one 256 KiB frame is one message and one piece).
   */
  private fits(length: number): number {
    if (this.readableFlowing === true) return length
    return Math.min(length, Math.max(this.readableHighWaterMark - this.readableLength, 1))
  }

  /**
   * Writes made in one tick leave as one Data frame: the message layer writes a 5-byte
   * header and then its payload, and corking until the next tick hands both to
   * `_writev` together (Node's http does the same per response).
   */
  override write(
    chunk: unknown,
    encoding?: BufferEncoding | ((err?: Error | null) => void),
    callback?: (err?: Error | null) => void,
  ): boolean {
    if (!this.autoCorked && !this.writableEnded) {
      this.autoCorked = true
      this.cork()
      process.nextTick(uncorkStream, this)
    }
    return super.write(chunk, encoding as BufferEncoding, callback)
  }

  /** @internal */
  _autoUncork(): void {
    this.autoCorked = false
    this.uncork()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.pending = { chunks: [chunk], index: 0, offset: 0, bytes: chunk.length, callback }
    this.flush()
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    const buffers = new Array<Buffer>(chunks.length)
    let bytes = 0
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!.chunk
      buffers[i] = c
      bytes += c.length
    }
    this.pending = { chunks: buffers, index: 0, offset: 0, bytes, callback }
    this.flush()
  }

  override _final(callback: (err?: Error | null) => void): void {
    if ((this._state & StreamState.QUEUED) !== 0 && !this.host.closed) {
      this.finalWaiting = callback
      return
    }
    if (this.host.closed || isTerminal(this._state)) {
      callback(new MuxError('GW_ERR_MUX_CLOSED', `stream ${this.id} cannot end: the link is closed`, this.id))
      return
    }
    const flags = FrameFlag.FIN | this.takeFlags()
    const next = closeLocal(this._state)
    if (next === INVALID) {
      callback(new MuxError('GW_ERR_MUX_CLOSED', `stream ${this.id} cannot end twice`, this.id))
      return
    }
    this.host._sendFrame(FrameType.WINDOW_UPDATE, flags, this.id, 0)
    callback()
    this.moveTo(next)
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const state = this._state
    if (!isTerminal(state)) {
      // Tell the peer, unless it never heard of the stream (its SYN still waited) or the link is gone.
      if ((state & StreamState.QUEUED) === 0 && !this.host.closed) {
        this.host._sendFrame(FrameType.WINDOW_UPDATE, FrameFlag.RST, this.id, 0)
      }
      this.moveTo(StreamState.RESET)
    }
    const final = this.finalWaiting
    if (final) {
      this.finalWaiting = undefined
      final(err ?? new MuxError('GW_ERR_MUX_CLOSED', `stream ${this.id} was destroyed`, this.id))
    }
    this.recvQueue = []
    this.recvQueued = 0
    const pending = this.pending
    if (pending) {
      this.pending = undefined
      pending.callback(err ?? new MuxError('GW_ERR_MUX_CLOSED', `stream ${this.id} was destroyed`, this.id))
    }
    callback(err)
  }

  /** Send as much of the pending write as the window and the transport allow. */
  private flush(): void {
    const pending = this.pending!
    const host = this.host
    const maxFrame = host._maxFrameSize
    while (pending.bytes > 0) {
      if (this.destroyed) return
      if (host.closed) {
        this.pending = undefined
        pending.callback(new MuxError('GW_ERR_MUX_CLOSED', undefined, this.id))
        return
      }
      if (this.sendWindow === 0 || !canSend(this._state)) {
        // Not yet opened (the SYN waits for a slot): `_sendSyn` flushes. Already finished
        // or reset: Node's Writable never writes after end, and destroy fails the write.
        if ((this._state & StreamState.QUEUED) !== 0 || this.sendWindow === 0) return
        this.pending = undefined
        pending.callback(new MuxError('GW_ERR_MUX_CLOSED', `stream ${this.id} can no longer send`, this.id))
        return
      }
      if (host._transportBlocked) {
        if (!this.waitingDrain) {
          this.waitingDrain = true
          host._waitForDrain(this)
        }
        return
      }
      const size = Math.min(this.sendWindow, maxFrame, pending.bytes)
      host._sendFrame(FrameType.DATA, this.takeFlags(), this.id, size, takeParts(pending, size))
      this.sendWindow -= size
    }
    this.pending = undefined
    pending.callback()
  }

  private pushEof(): void {
    if (this.eofPushed) return
    this.eofPushed = true
    this.push(null)
  }

  /**
   * Grant consumed bytes back once half the target is consumed (as hashicorp does), and
   * size the target to what the reader takes: a window needs to cover the reader's rate
   * times the link's round trip, with room to spare (`GROWTH_RTTS` round trips' worth).
   *
   * The rate is measured over at least `RATE_EPOCH_RTTS` round trips and `MIN_RATE_EPOCH_MS`,
   * not per grant: a slow client behind the relay reads in bursts, whenever its kernel
   * buffers free up, and a burst of a few hundred KiB taken in a millisecond looked like a
   * fast reader, so the window grew, filled and stayed full (bench/README.md, F7, F10).
   * When half a window had to wait for the reader, the target halves back toward the
   * initial window at once, so a reader that turns slow after a fast start is not left
   * holding a grown window.
   */
  private maybeGrant(): void {
    if (this.ungranted < this.recvTarget / 2 || !canReceive(this._state) || this.host.closed) return
    let delta = this.ungranted
    const now = performance.now()
    if (this.backpressured) {
      // ungranted >= target / 2 >= cut, so delta stays >= 0.
      const shrunk = Math.max(this.initialTarget, this.recvTarget / 2)
      delta -= this.recvTarget - shrunk
      this.recvTarget = shrunk
      this.rateEpoch = now
      this.rateBytes = 0
    } else {
      this.rateBytes += this.ungranted
      const rtt = this.host.rtt
      const elapsed = now - this.rateEpoch
      if (rtt !== undefined && elapsed >= Math.max(rtt * RATE_EPOCH_RTTS, MIN_RATE_EPOCH_MS)) {
        const needed = (this.rateBytes / elapsed) * rtt * GROWTH_RTTS
        if (needed >= this.recvTarget && this.recvTarget < this.maxWindow) {
          const grown = Math.min(this.recvTarget * 2, this.maxWindow)
          delta += grown - this.recvTarget
          this.recvTarget = grown
        }
        this.rateEpoch = now
        this.rateBytes = 0
      }
    }
    this.backpressured = false
    this.ungranted = 0
    if (delta === 0) return
    this.recvWindow += delta
    this.host._sendFrame(FrameType.WINDOW_UPDATE, this.takeFlags(), this.id, delta)
  }
}

/**
 * A small slice of a large transport chunk would pin the whole chunk for as long as the
 * reader leaves it unread; a window full of 1-byte frames could pin thousands of them.
 * Such slices are copied, which costs little because they are small.
 */
function compact(piece: Buffer): Buffer {
  return piece.length < 4096 && piece.length * 8 < piece.buffer.byteLength ? Buffer.from(piece) : piece
}

function uncorkStream(stream: Stream): void {
  stream._autoUncork()
}

/** Take `size` bytes off the front of a pending write as slices, without copying. */
function takeParts(pending: PendingWrite, size: number): Buffer[] {
  const parts: Buffer[] = []
  let need = size
  while (need > 0) {
    const chunk = pending.chunks[pending.index]!
    const available = chunk.length - pending.offset
    if (available <= need) {
      parts.push(pending.offset === 0 ? chunk : chunk.subarray(pending.offset))
      need -= available
      pending.index++
      pending.offset = 0
    } else {
      parts.push(chunk.subarray(pending.offset, pending.offset + need))
      pending.offset += need
      need = 0
    }
  }
  pending.bytes -= size
  return parts
}
