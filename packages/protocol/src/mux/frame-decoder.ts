/**
 * The yamux frame decoder: a state machine over bytes, in the manner of ws's Receiver.
 *
 * It consumes any chunking (a header split across chunks, a payload split across many)
 * and hands Data payloads on as zero-copy slices of the incoming chunks, so nothing on
 * the hot path concatenates. Whatever the spec forbids at the frame level (version, type,
 * flags, stream id 0 rules, frame size) is rejected here with a MuxError saying which;
 * session-level rules (windows, stream states) belong to the session.
 */
import { MuxError } from '../errors.js'
import {
  FRAME_HEADER_SIZE,
  FrameFlag,
  FrameType,
  GoAwayCode,
  KNOWN_FLAGS,
  YAMUX_VERSION,
} from './frame.js'

export interface FrameHandler {
  /**
   * One frame header. For Data, the payload follows through `onData` (possibly in
   * pieces) and then `onDataEnd`, even when it is empty.
   */
  onFrame(type: number, flags: number, streamId: number, length: number): void
  onData(chunk: Buffer): void
  onDataEnd(): void
}

export interface FrameDecoderOptions {
  /** Largest Data payload accepted; a larger header fails before any payload is read. */
  maxFrameSize: number
}

const STATE_HEADER = 0
const STATE_PAYLOAD = 1

export class FrameDecoder {
  readonly maxFrameSize: number
  private readonly handler: FrameHandler
  private state = STATE_HEADER
  private readonly header = Buffer.allocUnsafe(FRAME_HEADER_SIZE)
  private headerFill = 0
  private remaining = 0
  private halted = false

  constructor(handler: FrameHandler, options: FrameDecoderOptions) {
    this.handler = handler
    this.maxFrameSize = options.maxFrameSize
  }

  /**
   * Feed bytes. Throws a MuxError on a malformed frame, after which the decoder stays
   * halted: a byte stream cannot resynchronise once framing is lost.
   */
  push(chunk: Buffer): void {
    let offset = 0
    const end = chunk.length
    while (offset < end && !this.halted) {
      if (this.state === STATE_PAYLOAD) {
        const take = Math.min(this.remaining, end - offset)
        const piece = offset === 0 && take === end ? chunk : chunk.subarray(offset, offset + take)
        offset += take
        this.remaining -= take
        this.handler.onData(piece)
        if (this.remaining === 0) {
          this.state = STATE_HEADER
          if (!this.halted) this.handler.onDataEnd()
        }
        continue
      }
      // Fast path: a whole header inside this chunk is read in place.
      if (this.headerFill === 0 && end - offset >= FRAME_HEADER_SIZE) {
        this.startFrame(chunk, offset)
        offset += FRAME_HEADER_SIZE
        continue
      }
      const take = Math.min(FRAME_HEADER_SIZE - this.headerFill, end - offset)
      chunk.copy(this.header, this.headerFill, offset, offset + take)
      this.headerFill += take
      offset += take
      if (this.headerFill === FRAME_HEADER_SIZE) {
        this.headerFill = 0
        this.startFrame(this.header, 0)
      }
    }
  }

  /** Stop decoding for good; the rest of any chunk is ignored. */
  halt(): void {
    this.halted = true
  }

  /** True between frames: the byte stream may end here cleanly. */
  get atBoundary(): boolean {
    return this.state === STATE_HEADER && this.headerFill === 0
  }

  private startFrame(buf: Buffer, at: number): void {
    const version = buf[at]!
    const type = buf[at + 1]!
    const flags = (buf[at + 2]! << 8) | buf[at + 3]!
    const streamId = buf.readUInt32BE(at + 4)
    const length = buf.readUInt32BE(at + 8)
    try {
      validateHeader(version, type, flags, streamId, length, this.maxFrameSize)
    } catch (err) {
      this.halted = true
      throw err
    }
    if (type === FrameType.DATA) {
      this.handler.onFrame(type, flags, streamId, length)
      if (length === 0) {
        if (!this.halted) this.handler.onDataEnd()
      } else {
        this.remaining = length
        this.state = STATE_PAYLOAD
      }
      return
    }
    this.handler.onFrame(type, flags, streamId, length)
  }
}

function fail(code: 'GW_ERR_MUX_PROTOCOL' | 'GW_ERR_MUX_VERSION' | 'GW_ERR_MUX_FRAME_TOO_LARGE', message: string, streamId?: number): never {
  throw new MuxError(code, message, streamId)
}

/** Frame-level rules from the spec; exported so the encoder side can be tested against it. */
export function validateHeader(
  version: number,
  type: number,
  flags: number,
  streamId: number,
  length: number,
  maxFrameSize: number,
): void {
  if (version !== YAMUX_VERSION) fail('GW_ERR_MUX_VERSION', `unsupported yamux version ${version}`)
  if ((flags & ~KNOWN_FLAGS) !== 0) fail('GW_ERR_MUX_PROTOCOL', `unknown yamux flags 0x${flags.toString(16)}`, streamId)
  switch (type) {
    case FrameType.DATA:
    case FrameType.WINDOW_UPDATE:
      if (streamId === 0) fail('GW_ERR_MUX_PROTOCOL', 'a data or window update frame names stream 0')
      // A frame cannot both open and accept a stream, nor open one and reset it.
      if ((flags & FrameFlag.SYN) !== 0 && (flags & (FrameFlag.ACK | FrameFlag.RST)) !== 0) {
        fail('GW_ERR_MUX_PROTOCOL', `contradictory yamux flags 0x${flags.toString(16)}`, streamId)
      }
      if (type === FrameType.DATA && length > maxFrameSize) {
        fail('GW_ERR_MUX_FRAME_TOO_LARGE', `a yamux data frame of ${length} bytes exceeds the limit of ${maxFrameSize}`, streamId)
      }
      return
    case FrameType.PING:
      if (streamId !== 0) fail('GW_ERR_MUX_PROTOCOL', `a ping names stream ${streamId}, not 0`)
      if (flags !== FrameFlag.SYN && flags !== FrameFlag.ACK) {
        fail('GW_ERR_MUX_PROTOCOL', `a ping must carry exactly SYN or ACK, not 0x${flags.toString(16)}`)
      }
      return
    case FrameType.GO_AWAY:
      if (streamId !== 0) fail('GW_ERR_MUX_PROTOCOL', `a go away names stream ${streamId}, not 0`)
      if (flags !== 0) fail('GW_ERR_MUX_PROTOCOL', `a go away carries flags 0x${flags.toString(16)}`)
      if (length > GoAwayCode.INTERNAL_ERROR) fail('GW_ERR_MUX_PROTOCOL', `unknown go away code ${length}`)
      return
    default:
      fail('GW_ERR_MUX_PROTOCOL', `unknown yamux frame type ${type}`)
  }
}
