/**
 * Messages inside one yamux stream.
 *
 * Every stream carries a sequence of messages, each `[type u8][length u32 BE][payload]`.
 * A request stream carries: REQUEST_HEAD, DATA*, END (relay → agent) and
 * RESPONSE_HEAD, DATA*, END (agent → relay). Framing the body, instead of sending raw
 * bytes until FIN, is what lets trailers follow a body and lets a truncated body be told
 * apart from a complete one (ABORT), which raw bytes plus FIN cannot.
 *
 * After a 101 response both sides switch the stream to raw bytes (see `MessageReader.detach`).
 *
 * The decoder is a state machine over bytes in the manner of ws's Receiver: it consumes
 * across any chunking, streams DATA payloads out without buffering them whole, and bounds
 * every other message by `maxMessageSize`.
 */
import { GwError } from './errors.js'

export const MessageType = {
  REQUEST_HEAD: 0x01,
  RESPONSE_HEAD: 0x02,
  DATA: 0x03,
  END: 0x04,
  ABORT: 0x05,
  CONTINUE: 0x06,
  /** Opens a raw TCP stream (a tcp:// or tls:// endpoint): after it, bytes both ways until FIN. */
  TCP_HEAD: 0x07,
  HELLO: 0x10,
  WELCOME: 0x11,
  REFUSE: 0x12,
  NOTICE: 0x13,
  CACHE_HIT: 0x14,
  /** Internal endpoints: the agent's own (agent → relay), or its token's on the relay (relay → agent). */
  INTERNAL_ENDPOINTS: 0x15,
} as const

export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType]

const KNOWN_TYPES = new Set<number>(Object.values(MessageType))

export const MESSAGE_HEADER_SIZE = 5
/** Default bound for one non-DATA message (a head, trailers, a control message). */
export const DEFAULT_MAX_MESSAGE_SIZE = 2 * 1024 * 1024

export function encodeMessageHeader(type: MessageTypeValue, length: number): Buffer {
  const header = Buffer.allocUnsafe(MESSAGE_HEADER_SIZE)
  header[0] = type
  header.writeUInt32BE(length, 1)
  return header
}

/** One whole message; DATA arrives through `onData` instead, possibly in pieces. */
export interface DecodedMessage {
  type: MessageTypeValue
  payload: Buffer
}

export interface MessageDecoderHandlers {
  onMessage(message: DecodedMessage): void
  /** A piece of a DATA payload. Pieces arrive in order; `last` closes the message. */
  onData(chunk: Buffer, last: boolean): void
}

const STATE_HEADER = 0
const STATE_PAYLOAD = 1
const STATE_DATA = 2

export class MessageDecoder {
  readonly maxMessageSize: number
  private readonly handlers: MessageDecoderHandlers
  private state = STATE_HEADER
  /**
   * Only for a header split across chunks, which is rare; allocated then, outside
   * Buffer's pool: one pooled 5-byte slice per stream kept 8 KiB pool slabs alive,
   * 15.6 MiB at 10,000 requests in flight (bench/README.md, F4).
   */
  private header: Buffer | undefined
  private headerFill = 0
  private type: MessageTypeValue = MessageType.DATA
  private remaining = 0
  private parts: Buffer[] = []
  private failed = false

  constructor(handlers: MessageDecoderHandlers, maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE) {
    this.handlers = handlers
    this.maxMessageSize = maxMessageSize
  }

  /**
   * Feed bytes. Returns the number of bytes consumed; it is less than `chunk.length`
   * only when a handler called `stop()` (the stream switched to raw bytes).
   */
  push(chunk: Buffer): number {
    if (this.failed) throw new GwError('GW_ERR_MESSAGE_MALFORMED', 'the message decoder already failed')
    let offset = 0
    this.stopped = false
    while (offset < chunk.length && !this.stopped) {
      if (this.state === STATE_HEADER) {
        if (this.headerFill === 0 && chunk.length - offset >= MESSAGE_HEADER_SIZE) {
          this.startMessage(chunk[offset]!, chunk.readUInt32BE(offset + 1))
          offset += MESSAGE_HEADER_SIZE
          continue
        }
        const header = (this.header ??= Buffer.allocUnsafeSlow(MESSAGE_HEADER_SIZE))
        const take = Math.min(MESSAGE_HEADER_SIZE - this.headerFill, chunk.length - offset)
        chunk.copy(header, this.headerFill, offset, offset + take)
        this.headerFill += take
        offset += take
        if (this.headerFill < MESSAGE_HEADER_SIZE) break
        this.headerFill = 0
        this.startMessage(header[0]!, header.readUInt32BE(1))
        continue
      }
      const take = Math.min(this.remaining, chunk.length - offset)
      const piece = chunk.subarray(offset, offset + take)
      offset += take
      this.remaining -= take
      if (this.state === STATE_DATA) {
        const last = this.remaining === 0
        if (last) this.state = STATE_HEADER
        this.handlers.onData(piece, last)
      } else {
        this.parts.push(piece)
        if (this.remaining === 0) this.finishMessage()
      }
    }
    return offset
  }

  private stopped = false

  /** Stop consuming after the current message; the rest of the chunk is left unread. */
  stop(): void {
    this.stopped = true
  }

  /** True between messages: ending the stream here is clean. */
  get atBoundary(): boolean {
    return this.state === STATE_HEADER && this.headerFill === 0
  }

  private startMessage(type: number, length: number): void {
    if (!KNOWN_TYPES.has(type)) {
      this.failed = true
      throw new GwError('GW_ERR_MESSAGE_MALFORMED', `unknown stream message type 0x${type.toString(16)}`)
    }
    this.type = type as MessageTypeValue
    this.remaining = length
    if (type === MessageType.DATA) {
      this.state = STATE_DATA
      // A zero-length DATA message is legal and carries nothing.
      if (length === 0) this.state = STATE_HEADER
      return
    }
    if (length > this.maxMessageSize) {
      this.failed = true
      throw new GwError(
        'GW_ERR_MESSAGE_TOO_LARGE',
        `a stream message of ${length} bytes exceeds the limit of ${this.maxMessageSize} bytes`,
      )
    }
    this.state = STATE_PAYLOAD
    if (length === 0) this.finishMessage()
  }

  private finishMessage(): void {
    const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts)
    this.parts = []
    this.state = STATE_HEADER
    this.handlers.onMessage({ type: this.type, payload })
  }
}

export function encodeJsonMessage(type: MessageTypeValue, value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value))
  const out = Buffer.allocUnsafe(MESSAGE_HEADER_SIZE + json.length)
  out[0] = type
  out.writeUInt32BE(json.length, 1)
  json.copy(out, MESSAGE_HEADER_SIZE)
  return out
}

export function decodeJson<T>(payload: Buffer, what: string): T {
  try {
    return JSON.parse(payload.toString('utf8')) as T
  } catch (err) {
    throw new GwError('GW_ERR_MESSAGE_MALFORMED', `the ${what} is not valid JSON`, { cause: err })
  }
}
