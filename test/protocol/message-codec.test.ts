/**
 * The in-stream message codec (heads, DATA, END with trailers, ABORT): decoded the same
 * whatever the chunking, and every malformed input fails with its code, never a crash.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import {
  encodeJsonMessage,
  encodeMessageHeader,
  MessageDecoder,
  MessageType,
  type MessageTypeValue,
  GwError,
} from '@gw/protocol'

type Event = { type: MessageTypeValue; payload: string }

function encodeData(payload: Buffer): Buffer {
  return Buffer.concat([encodeMessageHeader(MessageType.DATA, payload.length), payload])
}

/** Decode `bytes` fed as `chunks`; DATA pieces are joined per message. */
function decode(chunks: Buffer[], maxMessageSize?: number): Event[] {
  const events: Event[] = []
  let data: Buffer[] = []
  const decoder = new MessageDecoder({
    onMessage: (m) => void events.push({ type: m.type, payload: m.payload.toString('latin1') }),
    onData: (chunk, last) => {
      data.push(Buffer.from(chunk))
      if (last) {
        events.push({ type: MessageType.DATA, payload: Buffer.concat(data).toString('latin1') })
        data = []
      }
    },
  }, maxMessageSize)
  for (const chunk of chunks) {
    let offset = 0
    // A head stops the decoder (the reader decides what follows); feed the rest after it.
    while (offset < chunk.length) offset += decoder.push(chunk.subarray(offset))
  }
  return events
}

const SAMPLE = Buffer.concat([
  encodeJsonMessage(MessageType.REQUEST_HEAD, { method: 'POST', target: '/x', rawHeaders: ['Host', 'a'] }),
  encodeData(Buffer.from('hello ')),
  encodeData(Buffer.alloc(0)),
  encodeData(Buffer.from('world')),
  encodeJsonMessage(MessageType.END, ['X-Sum', 'abc']),
  encodeMessageHeader(MessageType.CONTINUE, 0),
  encodeJsonMessage(MessageType.ABORT, { code: 'GW_ERR_UPSTREAM_FAILED', message: 'gone' }),
])
const EXPECTED = decode([SAMPLE])

describe('message codec', () => {
  it('decodes a sequence of every message type', () => {
    assert.deepEqual(EXPECTED.map((e) => e.type), [
      MessageType.REQUEST_HEAD, MessageType.DATA, MessageType.DATA, MessageType.END, MessageType.CONTINUE, MessageType.ABORT,
    ])
    assert.equal(EXPECTED[1]!.payload, 'hello ')
    assert.deepEqual(JSON.parse(EXPECTED[3]!.payload), ['X-Sum', 'abc'])
  })

  it('decodes the same when split at every offset, and fed one byte at a time', () => {
    for (let at = 0; at <= SAMPLE.length; at++) {
      assert.deepEqual(decode([SAMPLE.subarray(0, at), SAMPLE.subarray(at)]), EXPECTED, `split at ${at}`)
    }
    assert.deepEqual(decode([...SAMPLE].map((b) => Buffer.of(b))), EXPECTED)
  })

  it('round-trips random messages under random chunking (property)', () => {
    const message = fc.oneof(
      fc.record({ kind: fc.constant('data' as const), bytes: fc.uint8Array({ maxLength: 300 }) }),
      fc.record({ kind: fc.constant('head' as const), value: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 })) }),
      fc.record({ kind: fc.constant('end' as const), trailers: fc.array(fc.string({ maxLength: 10 }), { maxLength: 4 }) }),
    )
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (messages, cuts) => {
        const encoded = Buffer.concat(messages.map((m) =>
          m.kind === 'data' ? encodeData(Buffer.from(m.bytes))
            : m.kind === 'head' ? encodeJsonMessage(MessageType.RESPONSE_HEAD, m.value)
              : encodeJsonMessage(MessageType.END, m.trailers)))
        const chunks: Buffer[] = []
        for (let offset = 0, i = 0; offset < encoded.length; i++) {
          const size = cuts[i % cuts.length]!
          chunks.push(encoded.subarray(offset, offset + size))
          offset += size
        }
        const events = decode(chunks)
        // Empty DATA messages carry nothing and produce no event.
        const expected = messages.filter((m) => m.kind !== 'data' || m.bytes.length > 0)
        assert.equal(events.length, expected.length)
        expected.forEach((m, i) => {
          const e = events[i]!
          if (m.kind === 'data') assert.equal(e.payload, Buffer.from(m.bytes).toString('latin1'))
          else if (m.kind === 'head') assert.equal(Buffer.from(e.payload, 'latin1').toString(), JSON.stringify(m.value))
          else assert.deepEqual(JSON.parse(Buffer.from(e.payload, 'latin1').toString()), m.trailers)
        })
      }),
      { numRuns: 300 },
    )
  })

  it('refuses an unknown message type with GW_ERR_MESSAGE_MALFORMED', () => {
    assert.throws(() => decode([Buffer.from([0x7f, 0, 0, 0, 0])]), (e: GwError) => e.code === 'GW_ERR_MESSAGE_MALFORMED' && /0x7f/.test(e.message))
  })

  it('refuses a head over the size limit with GW_ERR_MESSAGE_TOO_LARGE, before buffering it', () => {
    const header = encodeMessageHeader(MessageType.REQUEST_HEAD, 1025)
    assert.throws(() => decode([header], 1024), (e: GwError) => e.code === 'GW_ERR_MESSAGE_TOO_LARGE' && /1025 bytes/.test(e.message))
  })

  it('streams DATA of any size without the size limit, which bounds only whole messages', () => {
    const big = Buffer.alloc(4096, 1)
    const events = decode([encodeData(big)], 1024)
    assert.equal(events[0]!.payload.length, 4096)
  })

  it('stays failed after a malformed message instead of resynchronising on garbage', () => {
    const decoder = new MessageDecoder({ onMessage() {}, onData() {} })
    assert.throws(() => decoder.push(Buffer.from([0x7f, 0, 0, 0, 0])))
    assert.throws(() => decoder.push(encodeMessageHeader(MessageType.CONTINUE, 0)), (e: GwError) => e.code === 'GW_ERR_MESSAGE_MALFORMED')
  })
})
