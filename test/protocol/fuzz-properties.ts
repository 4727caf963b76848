/**
 * Fuzz targets over peer input, shared by the bounded run inside `npm test`
 * (fuzz.test.ts) and `npm run fuzz` (scripts/fuzz.mjs, 10^6 cases each): any bytes into
 * the yamux frame decoder, any bytes into the stream-message decoder, and any JSON into
 * the handshake checks. Each must either decode or fail with gw's own coded error, never
 * throw anything else, and decode the same however the bytes are chunked.
 */
import fc from 'fast-check'
import {
  checkHello,
  checkWelcome,
  checkRequestHead,
  checkResponseHead,
  checkCodedMessage,
  FrameDecoder,
  GwError,
  MessageDecoder,
  MuxError,
} from '@gw/protocol'

/** Random bytes, biased toward valid-looking headers so the decoders get past byte one. */
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.array(
    fc.tuple(fc.constantFrom(0, 0, 0, 1), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 300 }), fc.uint8Array({ maxLength: 40 })),
    { maxLength: 8 },
  ).map((frames) => Uint8Array.from(frames.flatMap(([v, t, f, id, len, tail]) => [v, t, 0, f, 0, 0, 0, id, 0, 0, len >> 8, len & 0xff, ...tail]))),
)
const cuts = fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 10 })

function chunked(buf: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  for (const size of sizes) {
    if (at >= buf.length) break
    out.push(buf.subarray(at, at + size))
    at += size
  }
  if (at < buf.length) out.push(buf.subarray(at))
  return out
}

function decodeFrames(chunks: Buffer[]): string {
  const seen: string[] = []
  // A Data payload arrives in pieces that depend on the chunking; joined, they must not.
  let data: string[] = []
  const decoder = new FrameDecoder({
    onFrame: (type, flags, id, length) => void seen.push(`f${type}.${flags}.${id}.${length}`),
    onData: (c) => void data.push(c.toString('hex')),
    onDataEnd: () => {
      seen.push(`d${data.join('')}`)
      data = []
    },
  }, { maxFrameSize: 1024 })
  try {
    for (const c of chunks) decoder.push(c)
  } catch (err) {
    if (!(err instanceof MuxError)) throw err
    seen.push(`error ${err.code}`)
  }
  if (data.length > 0) seen.push(`partial ${data.join('')}`)
  return seen.join(' ')
}

export const frameDecoder = fc.property(bytes, cuts, (raw, sizes) => {
  const buf = Buffer.from(raw)
  const whole = decodeFrames([buf])
  const pieces = decodeFrames(chunked(buf, sizes))
  if (whole !== pieces) throw new Error(`chunking changed the decoding:\n${whole}\n${pieces}`)
})

function decodeMessages(chunks: Buffer[]): string {
  const seen: string[] = []
  const decoder = new MessageDecoder({
    onMessage: (m) => void seen.push(`m${m.type}:${m.payload.toString('hex')}`),
    onData: (c) => void seen.push(c.toString('hex')),
  }, 256)
  try {
    for (const c of chunks) decoder.push(c)
  } catch (err) {
    if (!(err instanceof GwError)) throw err
    seen.push(`error ${err.code}`)
  }
  return seen.join('|').replace(/\|(?=[0-9a-f])/g, '')
}

export const messageCodec = fc.property(bytes, cuts, (raw, sizes) => {
  const buf = Buffer.from(raw)
  const whole = decodeMessages([buf])
  const pieces = decodeMessages(chunked(buf, sizes))
  if (whole !== pieces) throw new Error(`chunking changed the decoding:\n${whole}\n${pieces}`)
})

const CHECKS = [
  (v: unknown) => checkHello(v),
  (v: unknown) => checkWelcome(v),
  (v: unknown) => checkRequestHead(v),
  (v: unknown) => checkResponseHead(v),
  (v: unknown) => checkCodedMessage(v, 'refusal'),
]

/** Any JSON value, and objects shaped like the real messages with wrong field types. */
const jsonish = fc.oneof(
  fc.jsonValue(),
  fc.record({
    version: fc.oneof(fc.integer(), fc.string(), fc.constant(null)),
    authtoken: fc.oneof(fc.string(), fc.integer()),
    agentId: fc.oneof(fc.string(), fc.array(fc.string())),
    client: fc.string(),
    endpoints: fc.oneof(fc.array(fc.record({ name: fc.oneof(fc.string(), fc.integer()), proto: fc.string(), urls: fc.array(fc.string()) })), fc.string()),
    heartbeatTimeout: fc.oneof(fc.integer(), fc.string()),
    code: fc.oneof(fc.constant('GW_ERR_AUTH_INVALID'), fc.string()),
    message: fc.oneof(fc.string(), fc.integer()),
    status: fc.oneof(fc.integer(), fc.string()),
    rawHeaders: fc.oneof(fc.array(fc.string()), fc.array(fc.integer())),
  }, { requiredKeys: [] }),
)

export const handshake = fc.property(jsonish, fc.integer({ min: 0, max: CHECKS.length - 1 }), (value, which) => {
  // Through JSON, as it arrives on the wire.
  const parsed = JSON.parse(JSON.stringify(value) ?? 'null') as unknown
  try {
    CHECKS[which]!(parsed)
  } catch (err) {
    if (!(err instanceof GwError) || err.code !== 'GW_ERR_MESSAGE_MALFORMED') throw err
  }
})

// Typed loosely: the runners treat every target alike.
export const TARGETS: Record<string, fc.IProperty<unknown[]>> = {
  'frame decoder': frameDecoder as unknown as fc.IProperty<unknown[]>,
  'message codec': messageCodec as unknown as fc.IProperty<unknown[]>,
  handshake: handshake as unknown as fc.IProperty<unknown[]>,
}
