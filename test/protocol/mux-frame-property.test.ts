/**
 * Property tests for the yamux frame codec: any valid frame sequence, cut into any
 * chunks, decodes to exactly what was encoded.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { encodeFrame, FrameDecoder, FrameFlag, FrameType, GoAwayCode } from '@gw/protocol'
import { decodeChunks, expected, FrameRecorder } from './mux-frame-recorder.js'

const streamId = fc.integer({ min: 1, max: 0xffff_ffff })
const u32 = fc.integer({ min: 0, max: 0xffff_ffff })
// Flag sets the decoder accepts on stream frames: SYN never with ACK or RST.
const streamFlags = fc.constantFrom(
  0, FrameFlag.SYN, FrameFlag.ACK, FrameFlag.FIN, FrameFlag.RST,
  FrameFlag.SYN | FrameFlag.FIN, FrameFlag.ACK | FrameFlag.FIN, FrameFlag.FIN | FrameFlag.RST, FrameFlag.ACK | FrameFlag.RST,
)

const frame = fc.oneof(
  fc.record({
    type: fc.constant<number>(FrameType.DATA),
    flags: streamFlags,
    streamId,
    length: fc.constant(0),
    payload: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  }),
  fc.record({ type: fc.constant<number>(FrameType.WINDOW_UPDATE), flags: streamFlags, streamId, length: u32 }),
  fc.record({
    type: fc.constant<number>(FrameType.PING),
    flags: fc.constantFrom(FrameFlag.SYN, FrameFlag.ACK),
    streamId: fc.constant(0),
    length: u32,
  }),
  fc.record({
    type: fc.constant<number>(FrameType.GO_AWAY),
    flags: fc.constant(0),
    streamId: fc.constant(0),
    length: fc.constantFrom(GoAwayCode.NORMAL, GoAwayCode.PROTOCOL_ERROR, GoAwayCode.INTERNAL_ERROR),
  }),
)

/** Cut `bytes` at the given points (any order, duplicates allowed: empty chunks too). */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const sorted = points.map((p) => p % (bytes.length + 1)).sort((a, b) => a - b)
  const chunks: Buffer[] = []
  let from = 0
  for (const p of sorted) {
    chunks.push(bytes.subarray(from, p))
    from = p
  }
  chunks.push(bytes.subarray(from))
  return chunks
}

describe('yamux frame codec properties', () => {
  it('encode then decode round-trips any frame sequence under any chunking', () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, points) => {
        const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.flags, f.streamId, f.length, 'payload' in f ? f.payload : undefined)))
        assert.deepEqual(decodeChunks(cut(bytes, points)), expected(frames))
      }),
      { numRuns: 400 },
    )
  })

  it('decoding twice over different chunkings gives the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(frame, { minLength: 1, maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (frames, a, b) => {
          const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.flags, f.streamId, f.length, 'payload' in f ? f.payload : undefined)))
          assert.deepEqual(decodeChunks(cut(bytes, a)), decodeChunks(cut(bytes, b)))
        },
      ),
      { numRuns: 200 },
    )
  })

  it('random bytes either decode or fail with a GW_ERR_MUX code, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 10 }), (raw, points) => {
        const decoder = new FrameDecoder(new FrameRecorder(), { maxFrameSize: 64 })
        try {
          for (const chunk of cut(Buffer.from(raw), points)) decoder.push(chunk)
        } catch (err) {
          assert.match((err as { code?: string }).code ?? '', /^GW_ERR_MUX_/)
        }
      }),
      { numRuns: 500 },
    )
  })
})
