/**
 * The yamux frame codec at the byte level: every frame type encodes to the spec's
 * 12-byte header, and the decoder reads the same frames back however the bytes are cut.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeFrame, encodeFrameHeader, FrameDecoder, FrameFlag, FrameType, GoAwayCode } from '@gw/protocol'
import { decodeChunks, expected } from './mux-frame-recorder.js'

const FRAMES = [
  { type: FrameType.WINDOW_UPDATE, flags: FrameFlag.SYN, streamId: 1, length: 0 },
  { type: FrameType.WINDOW_UPDATE, flags: FrameFlag.ACK, streamId: 1, length: 1024 * 1024 },
  { type: FrameType.DATA, flags: 0, streamId: 1, length: 0, payload: Buffer.from('hello, yamux') },
  { type: FrameType.DATA, flags: FrameFlag.SYN, streamId: 3, length: 0, payload: Buffer.from([0, 1, 2, 255]) },
  { type: FrameType.DATA, flags: FrameFlag.FIN, streamId: 2, length: 0, payload: Buffer.alloc(0) },
  { type: FrameType.WINDOW_UPDATE, flags: 0, streamId: 0xffff_fffe, length: 0xffff_ffff },
  { type: FrameType.WINDOW_UPDATE, flags: FrameFlag.FIN, streamId: 1, length: 0 },
  { type: FrameType.WINDOW_UPDATE, flags: FrameFlag.RST, streamId: 3, length: 0 },
  { type: FrameType.PING, flags: FrameFlag.SYN, streamId: 0, length: 0xdead_beef },
  { type: FrameType.PING, flags: FrameFlag.ACK, streamId: 0, length: 0xdead_beef },
  { type: FrameType.DATA, flags: FrameFlag.ACK | FrameFlag.FIN, streamId: 5, length: 0, payload: Buffer.alloc(300, 9) },
  { type: FrameType.GO_AWAY, flags: 0, streamId: 0, length: GoAwayCode.NORMAL },
  { type: FrameType.GO_AWAY, flags: 0, streamId: 0, length: GoAwayCode.PROTOCOL_ERROR },
  { type: FrameType.GO_AWAY, flags: 0, streamId: 0, length: GoAwayCode.INTERNAL_ERROR },
]

const BYTES = Buffer.concat(FRAMES.map((f) => encodeFrame(f.type, f.flags, f.streamId, f.length, f.payload)))
const EXPECTED = expected(FRAMES)

describe('yamux frame codec', () => {
  it('encodes the 12-byte header as the spec lays it out', () => {
    const header = encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.SYN | FrameFlag.FIN, 0x01020304, 0x0a0b0c0d)
    assert.deepEqual([...header], [0, 1, 0, 5, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d])
    const data = encodeFrame(FrameType.DATA, 0, 7, 0, Buffer.from('ab'))
    assert.deepEqual([...data], [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0x61, 0x62])
    const goAway = encodeFrameHeader(FrameType.GO_AWAY, 0, 0, GoAwayCode.PROTOCOL_ERROR)
    assert.deepEqual([...goAway], [0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
  })

  it('decodes every frame type from one chunk', () => {
    assert.deepEqual(decodeChunks([BYTES]), EXPECTED)
  })

  it('decodes the stream split at every single offset', () => {
    for (let at = 0; at <= BYTES.length; at++) {
      assert.deepEqual(decodeChunks([BYTES.subarray(0, at), BYTES.subarray(at)]), EXPECTED, `split at ${at}`)
    }
  })

  it('decodes the stream fed one byte at a time', () => {
    const chunks: Buffer[] = []
    for (let i = 0; i < BYTES.length; i++) chunks.push(BYTES.subarray(i, i + 1))
    assert.deepEqual(decodeChunks(chunks), EXPECTED)
  })

  it('hands payloads on as slices of the input, without copying', () => {
    const payload = Buffer.alloc(4096, 1)
    const bytes = encodeFrame(FrameType.DATA, 0, 1, 0, payload)
    const seen: Buffer[] = []
    // A payload in the same chunk as its header is a view of that chunk.
    const recorder = {
      onFrame() {},
      onData(chunk: Buffer) {
        seen.push(chunk)
      },
      onDataEnd() {},
    }
    const decoder = new FrameDecoder(recorder, { maxFrameSize: 1 << 20 })
    decoder.push(bytes)
    assert.equal(seen.length, 1)
    assert.equal(seen[0]!.buffer, bytes.buffer)
  })

  it('accepts a data frame of exactly maxFrameSize', () => {
    const bytes = encodeFrame(FrameType.DATA, 0, 1, 0, Buffer.alloc(100))
    assert.equal(decodeChunks([bytes], 100).length, 1)
  })
})
