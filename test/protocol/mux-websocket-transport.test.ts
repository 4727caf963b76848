/**
 * The WebSocket adapter under a Session, with a raw ws peer on the other end: message
 * boundaries are free to fall anywhere relative to yamux frames.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import type { WebSocket } from 'ws'
import {
  MuxError,
  createWebSocketTransport,
  encodeFrame,
  encodeFrameHeader,
  FrameFlag,
  FrameType,
  Session,
  type Stream,
} from '@gw/protocol'
import { ignore, readAll, until, wsSocketPair } from './mux-helpers.js'
import { decodeChunks } from './mux-frame-recorder.js'

async function rawPeer() {
  const pair = await wsSocketPair()
  // Our session is the relay (server side of the ws); the raw client plays the agent.
  const session = new Session(createWebSocketTransport(pair.server), { client: false, keepAliveInterval: 0 })
  const received: Buffer[] = []
  pair.client.on('message', (data: Buffer) => received.push(data))
  pair.client.on('error', ignore)
  return { session, raw: pair.client as WebSocket, received, close: () => pair.close() }
}

describe('WebSocket transport', () => {
  it('decodes frames whose bytes are cut across ws messages at every offset', async (t) => {
    const peer = await rawPeer()
    t.after(() => {
      peer.session.close()
      return peer.close()
    })
    const body = Buffer.from('a frame split across websocket messages')
    const bytes = Buffer.concat([
      encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 1, 0),
      encodeFrame(FrameType.DATA, 0, 1, 0, body),
      encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.FIN, 1, 0),
    ])
    const streams: Stream[] = []
    peer.session.on('stream', (s: Stream) => {
      s.on('error', ignore)
      streams.push(s)
    })
    // Three messages, cut inside the first header and inside the payload.
    peer.raw.send(bytes.subarray(0, 5))
    peer.raw.send(bytes.subarray(5, 30))
    peer.raw.send(bytes.subarray(30))
    await until(() => streams.length === 1, 'the stream')
    assert.equal((await readAll(streams[0]!)).toString(), body.toString())
  })

  it('sends several small frames in one ws message', async (t) => {
    const peer = await rawPeer()
    t.after(() => {
      peer.session.close()
      return peer.close()
    })
    // Opening three streams in one tick: three SYN frames, one message.
    for (let i = 0; i < 3; i++) peer.session.open().on('error', ignore)
    await until(() => peer.received.length > 0, 'a message')
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(peer.received.length, 1)
    const frames = decodeChunks(peer.received)
    assert.deepEqual(frames.map((f) => [f.type, f.flags, f.streamId]), [
      [FrameType.WINDOW_UPDATE, FrameFlag.SYN, 2],
      [FrameType.WINDOW_UPDATE, FrameFlag.SYN, 4],
      [FrameType.WINDOW_UPDATE, FrameFlag.SYN, 6],
    ])
  })

  it('a text message is a protocol error on the link', async (t) => {
    const peer = await rawPeer()
    t.after(() => peer.close())
    const closed = once(peer.session, 'close')
    peer.raw.send('not binary')
    const [err] = await closed
    assert.ok(err instanceof MuxError)
    assert.equal(err.code, 'GW_ERR_MUX_PROTOCOL')
  })

  it('the WebSocket closing closes the session; closing the session closes the WebSocket', async (t) => {
    const first = await rawPeer()
    t.after(() => first.close())
    const closed = once(first.session, 'close')
    first.raw.close(1000)
    const [err] = await closed
    assert.equal((err as MuxError).code, 'GW_ERR_MUX_CLOSED')

    const second = await rawPeer()
    t.after(() => second.close())
    const wsClosed = once(second.raw, 'close')
    second.session.close()
    const [code] = await wsClosed
    assert.equal(code, 1000)
    // The peer got a GoAway(normal) before the close.
    const frames = decodeChunks(second.received)
    assert.deepEqual(frames.map((f) => [f.type, f.length]), [[FrameType.GO_AWAY, 0]])
  })

  it('a session on a WebSocket that already closed closes at once', async (t) => {
    const pair = await wsSocketPair()
    t.after(() => pair.close())
    pair.client.close()
    await once(pair.client, 'close')
    const session = new Session(createWebSocketTransport(pair.client), { client: true, keepAliveInterval: 0 })
    const [err] = await once(session, 'close')
    assert.equal((err as MuxError).code, 'GW_ERR_MUX_CLOSED')
    assert.throws(() => session.open(), (e: MuxError) => e.code === 'GW_ERR_MUX_CLOSED')
  })
})
