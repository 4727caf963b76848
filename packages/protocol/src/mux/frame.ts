/**
 * yamux frame constants and header encoding, per hashicorp/yamux spec.md.
 *
 * Every frame starts with a 12-byte big-endian header:
 * `[version u8][type u8][flags u16][stream id u32][length u32]`.
 * `length` is the payload size for Data, the window delta for WindowUpdate, an opaque
 * value for Ping, and the error code for GoAway; only Data carries a payload.
 */

export const YAMUX_VERSION = 0
export const FRAME_HEADER_SIZE = 12

export const FrameType = {
  DATA: 0x0,
  WINDOW_UPDATE: 0x1,
  PING: 0x2,
  GO_AWAY: 0x3,
} as const

export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType]

export const FrameFlag = {
  SYN: 0x1,
  ACK: 0x2,
  FIN: 0x4,
  RST: 0x8,
} as const

/** Every flag bit the spec defines; any other bit set is a protocol error. */
export const KNOWN_FLAGS = 0xf

export const GoAwayCode = {
  NORMAL: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
} as const

/** The window every stream starts with, fixed by the spec; larger windows are granted by update. */
export const INITIAL_STREAM_WINDOW = 256 * 1024

export const MAX_UINT32 = 0xffff_ffff

/**
 * Encode one frame header. Allocates from Node's shared pool, so a header costs no
 * syscall-sized allocation; the payload travels as its own buffer, never copied in.
 */
export function encodeFrameHeader(type: number, flags: number, streamId: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_SIZE)
  header[0] = YAMUX_VERSION
  header[1] = type
  header[2] = flags >>> 8
  header[3] = flags & 0xff
  header.writeUInt32BE(streamId >>> 0, 4)
  header.writeUInt32BE(length >>> 0, 8)
  return header
}

/** A whole frame as one buffer; for tests and rare control paths, not the data path. */
export function encodeFrame(type: number, flags: number, streamId: number, length: number, payload?: Buffer): Buffer {
  const header = encodeFrameHeader(type, flags, streamId, payload ? payload.length : length)
  return payload && payload.length > 0 ? Buffer.concat([header, payload]) : header
}
