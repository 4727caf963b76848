/**
 * The message layer (heads, framed bodies) running over real yamux streams, the way the
 * relay and the agent use it: body bytes arrive intact, and a body nobody reads stops
 * the sender through the yamux window.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import {
  decodeJson,
  encodeJsonMessage,
  encodeMessageHeader,
  MessageType,
  MessageReader,
  sendFramedBody,
  writeJsonMessage,
} from '@gw/protocol'
import { ignore, nextStream, readAll, sessionPair, until } from './mux-helpers.js'

// Only the framing matters here, not the head's schema, which has its own tests.
const HEAD = {
  method: 'POST',
  target: '/upload?x=1',
  httpVersion: '1.1',
  rawHeaders: ['Host', 'demo.example', 'Content-Type', 'application/octet-stream'],
  remoteAddress: '127.0.0.1',
  remotePort: 5555,
  scheme: 'http' as const,
  tunnel: 'demo',
  receivedAt: Date.now(),
  upgrade: false,
  expectContinue: false,
  hasBody: true,
}

describe('message layer over yamux', () => {
  it('a head and a 4 MiB framed body with trailers arrive intact', async (t) => {
    const pair = await sessionPair('ws')
    t.after(() => pair.close())
    const accepted = nextStream(pair.server)
    const stream = pair.client.open()
    const body = randomBytes(4 * 1024 * 1024)
    writeJsonMessage(stream, MessageType.REQUEST_HEAD, HEAD)
    // Chunks of 16 KiB, as an HTTP body arrives.
    const chunks = Array.from({ length: body.length / 16384 }, (_, i) => body.subarray(i * 16384, (i + 1) * 16384))
    const sending = new Promise<void>((resolve, reject) =>
      sendFramedBody(Readable.from(chunks), stream, (err) => (err ? reject(err) : resolve()), () => ['X-Checksum', 'abc']),
    )

    const remote = await accepted
    const reader = new MessageReader(remote)
    const head = await reader.next()
    assert.equal(head?.type, MessageType.REQUEST_HEAD)
    assert.deepEqual(decodeJson(head.payload, 'request head'), HEAD)
    const received = reader.body()
    const got = await readAll(received)
    assert.equal(got.length, body.length)
    assert.ok(got.equals(body))
    assert.deepEqual(received.trailers, ['X-Checksum', 'abc'])
    await sending
    remote.end()
    await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
  })

  it('an unread body holds the sender through the window', async (t) => {
    const pair = await sessionPair('net')
    t.after(() => pair.close())
    const accepted = nextStream(pair.server)
    const stream = pair.client.open()
    writeJsonMessage(stream, MessageType.REQUEST_HEAD, HEAD)
    let produced = 0
    const source = new Readable({
      read() {
        produced += 65536
        this.push(produced > 64 * 1024 * 1024 ? null : Buffer.alloc(65536))
      },
    })
    const sending = new Promise<Error | undefined>((resolve) => sendFramedBody(source, stream, resolve))
    const remote = await accepted
    const reader = new MessageReader(remote)
    assert.equal((await reader.next())?.type, MessageType.REQUEST_HEAD)
    reader.body().on('error', ignore) // taken, never read
    await new Promise((resolve) => setTimeout(resolve, 300))
    // Window and stream buffers: a few MiB at most, never the 64 MiB body.
    assert.ok(produced < 4 * 1024 * 1024, `the source produced ${produced} bytes`)
    const bound = 256 * 1024 + remote.readableHighWaterMark
    assert.ok(remote.receiveBuffered <= bound, `the receiver buffers ${remote.receiveBuffered} bytes (bound ${bound})`)
    stream.destroy()
    // The sender learns that the body could not be sent.
    assert.ok((await sending) instanceof Error)
  })
  it('a request that arrives whole, FIN included, before the body is asked for keeps its body', async (t) => {
    const pair = await sessionPair('ws')
    t.after(() => pair.close())
    const accepted = nextStream(pair.server)
    const stream = pair.client.open()
    const payload = Buffer.from('a short body, sent with its head, END and FIN in one write')
    stream.end(Buffer.concat([
      encodeJsonMessage(MessageType.REQUEST_HEAD, HEAD),
      encodeMessageHeader(MessageType.DATA, payload.length),
      payload,
      encodeMessageHeader(MessageType.END, 0),
    ]))
    const remote = await accepted
    const reader = new MessageReader(remote)
    assert.equal((await reader.next())?.type, MessageType.REQUEST_HEAD)
    // The reader waits behind the head while the stream's end arrives: that end must not
    // count before the bytes read ahead of it are decoded.
    await until(() => remote.readableEnded, 'the stream ended')
    const body = reader.body()
    assert.ok((await readAll(body)).equals(payload))
    assert.equal(await reader.next(), null)
  })
})
