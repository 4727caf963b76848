/**
 * Malformed input from the peer: a raw TCP peer writes bad frames at a real Session, which
 * must close with a MuxError whose code names the fault, fail its streams, send a GoAway
 * saying protocol error, and never throw out of an event handler.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { describe, it } from 'node:test'
import {
  MuxError,
  type ErrorCode,
  encodeFrame,
  encodeFrameHeader,
  FrameFlag,
  FrameType,
  GoAwayCode,
  INITIAL_STREAM_WINDOW,
  DEFAULT_MAX_WINDOW,
  Session,
  type Stream,
} from '@gw/protocol'
import { ignore, netPair, until } from './mux-helpers.js'
import { decodeChunks } from './mux-frame-recorder.js'

const MAX_FRAME = 64 * 1024

interface Harness {
  session: Session
  raw: Socket
  received: Buffer[]
  close(): Promise<void>
}

/** Our session as the relay (server) facing a raw socket that plays a misbehaving agent. */
async function harness(): Promise<Harness> {
  const pair = await netPair()
  const session = new Session(pair.server, { client: false, keepAliveInterval: 0, maxFrameSize: MAX_FRAME })
  session.on('stream', (s: Stream) => s.on('error', ignore))
  const raw = pair.client as Socket
  const received: Buffer[] = []
  raw.on('data', (c: Buffer) => received.push(c))
  raw.on('error', ignore)
  return { session, raw, received, close: () => pair.close() }
}

function header(type: number, flags: number, streamId: number, length: number, version = 0): Buffer {
  const h = encodeFrameHeader(type, flags, streamId, length)
  h[0] = version
  return h
}

const CASES: Array<{ name: string; bytes: () => Buffer; code: ErrorCode }> = [
  { name: 'a nonzero version', bytes: () => header(FrameType.PING, FrameFlag.SYN, 0, 1, 1), code: 'GW_ERR_MUX_VERSION' },
  { name: 'an unknown frame type', bytes: () => header(4, 0, 1, 0), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'an unknown flag bit', bytes: () => header(FrameType.WINDOW_UPDATE, 0x10 | FrameFlag.SYN, 1, 0), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'SYN together with ACK', bytes: () => header(FrameType.WINDOW_UPDATE, FrameFlag.SYN | FrameFlag.ACK, 1, 0), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'SYN together with RST', bytes: () => header(FrameType.DATA, FrameFlag.SYN | FrameFlag.RST, 1, 0), code: 'GW_ERR_MUX_PROTOCOL' },
  // maxFrameSize bounds what we send; what we accept is bounded by the window we granted.
  { name: 'a data frame larger than any window we grant', bytes: () => header(FrameType.DATA, FrameFlag.SYN, 1, DEFAULT_MAX_WINDOW + 1), code: 'GW_ERR_MUX_FRAME_TOO_LARGE' },
  { name: 'a data frame larger than the window we granted', bytes: () => header(FrameType.DATA, FrameFlag.SYN, 1, INITIAL_STREAM_WINDOW + 1), code: 'GW_ERR_MUX_WINDOW_EXCEEDED' },
  { name: 'a data frame on stream 0', bytes: () => encodeFrame(FrameType.DATA, 0, 0, 0, Buffer.from('x')), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a window update on stream 0', bytes: () => header(FrameType.WINDOW_UPDATE, 0, 0, 10), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a ping on a nonzero stream', bytes: () => header(FrameType.PING, FrameFlag.SYN, 1, 7), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a ping with neither SYN nor ACK', bytes: () => header(FrameType.PING, 0, 0, 7), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a ping with SYN and ACK', bytes: () => header(FrameType.PING, FrameFlag.SYN | FrameFlag.ACK, 0, 7), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a go away on a nonzero stream', bytes: () => header(FrameType.GO_AWAY, 0, 1, 0), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a go away with flags', bytes: () => header(FrameType.GO_AWAY, FrameFlag.FIN, 0, 0), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a go away with an unknown code', bytes: () => header(FrameType.GO_AWAY, 0, 0, 3), code: 'GW_ERR_MUX_PROTOCOL' },
  { name: 'a stream opened with the wrong parity', bytes: () => header(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 2, 0), code: 'GW_ERR_MUX_PROTOCOL' },
  {
    name: 'the same stream opened twice',
    bytes: () => Buffer.concat([header(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 1, 0), header(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 1, 0)]),
    code: 'GW_ERR_MUX_PROTOCOL',
  },
  {
    name: 'data after FIN',
    bytes: () => Buffer.concat([
      header(FrameType.WINDOW_UPDATE, FrameFlag.SYN | FrameFlag.FIN, 1, 0),
      encodeFrame(FrameType.DATA, 0, 1, 0, Buffer.from('late')),
    ]),
    code: 'GW_ERR_MUX_PROTOCOL',
  },
  {
    name: 'data beyond the stream window',
    bytes: () => {
      const frames = [header(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 1, 0)]
      // Four full frames fill the 256 KiB window; nothing is read, so nothing is granted.
      for (let sent = 0; sent < INITIAL_STREAM_WINDOW; sent += MAX_FRAME) frames.push(encodeFrame(FrameType.DATA, 0, 1, 0, Buffer.alloc(MAX_FRAME)))
      frames.push(encodeFrame(FrameType.DATA, 0, 1, 0, Buffer.from('one byte too many')))
      return Buffer.concat(frames)
    },
    code: 'GW_ERR_MUX_WINDOW_EXCEEDED',
  },
]

describe('malformed yamux input closes the link with a code', () => {
  for (const c of CASES) {
    it(c.name, async (t) => {
      const h = await harness()
      t.after(() => h.close())
      // An open stream must fail with the link.
      const s = h.session.open()
      const streamErr = once(s, 'error')
      const closed = once(h.session, 'close')
      const peerEnded = once(h.raw, 'end')
      // Sent a byte at a time where small, to cross chunk boundaries on the way.
      const bytes = c.bytes()
      if (bytes.length <= 64) for (let i = 0; i < bytes.length; i++) h.raw.write(bytes.subarray(i, i + 1))
      else h.raw.write(bytes)
      const [err] = await closed
      assert.ok(err instanceof MuxError, `closed with ${String(err)}`)
      assert.equal(err.code, c.code)
      const [sErr] = await streamErr
      assert.equal((sErr as MuxError).code, c.code)
      assert.equal(h.session.closed, true)
      assert.equal(h.session.streamCount, 0)
      // The peer is told why before the transport ends.
      await peerEnded
      const frames = decodeChunks([Buffer.concat(h.received)])
      const goAway = frames.find((f) => f.type === FrameType.GO_AWAY)
      assert.ok(goAway, 'a go away frame was sent')
      assert.equal(goAway.length, GoAwayCode.PROTOCOL_ERROR)
    })
  }

  it('a transport that ends in the middle of a frame closes the link', async (t) => {
    const h = await harness()
    t.after(() => h.close())
    const closed = once(h.session, 'close')
    h.raw.end(header(FrameType.DATA, FrameFlag.SYN, 1, 100).subarray(0, 7))
    const [err] = await closed
    assert.equal((err as MuxError).code, 'GW_ERR_MUX_CLOSED')
  })

  it('frames for unknown streams are dropped, as after a reset', async (t) => {
    const h = await harness()
    t.after(() => h.close())
    h.raw.write(Buffer.concat([
      encodeFrame(FrameType.DATA, 0, 9, 0, Buffer.from('stale')),
      header(FrameType.WINDOW_UPDATE, 0, 9, 100),
      header(FrameType.WINDOW_UPDATE, FrameFlag.RST, 9, 0),
      header(FrameType.PING, FrameFlag.SYN, 0, 42),
    ]))
    // The ping is answered, so everything before it was consumed without harm.
    await new Promise<void>((resolve) => {
      const check = () => {
        const frames = decodeChunks([Buffer.concat(h.received)])
        if (frames.some((f) => f.type === FrameType.PING && f.flags === FrameFlag.ACK && f.length === 42)) resolve()
        else h.raw.once('data', check)
      }
      check()
    })
    assert.equal(h.session.closed, false)
  })

  it('a stream opened by a data frame with SYN delivers that frame\'s payload', async (t) => {
    const h = await harness()
    t.after(() => h.close())
    const accepted = once(h.session, 'stream')
    h.raw.write(Buffer.concat([
      encodeFrame(FrameType.DATA, FrameFlag.SYN, 1, 0, Buffer.from('first bytes, ')),
      encodeFrame(FrameType.DATA, FrameFlag.FIN, 1, 0, Buffer.from('last bytes')),
    ]))
    const [stream] = (await accepted) as [Stream]
    const parts: Buffer[] = []
    stream.on('data', (c: Buffer) => parts.push(c))
    await once(stream, 'end')
    assert.equal(Buffer.concat(parts).toString(), 'first bytes, last bytes')
    // The session acknowledged the stream.
    await until(
      () => decodeChunks([Buffer.concat(h.received)]).some((f) => f.type === FrameType.WINDOW_UPDATE && f.flags === FrameFlag.ACK && f.streamId === 1),
      'the ACK',
    )
  })

  it('accepts a data frame as large as the window it granted, beyond maxFrameSize', async (t) => {
    // hashicorp/yamux sends each write as one frame, up to the whole window.
    const h = await harness()
    t.after(() => h.close())
    const accepted = once(h.session, 'stream')
    const payload = Buffer.alloc(INITIAL_STREAM_WINDOW, 7)
    h.raw.write(encodeFrame(FrameType.DATA, FrameFlag.SYN | FrameFlag.FIN, 1, 0, payload))
    const [stream] = (await accepted) as [Stream]
    let received = 0
    stream.on('data', (c: Buffer) => (received += c.length))
    await once(stream, 'end')
    assert.equal(received, INITIAL_STREAM_WINDOW)
    assert.ok(INITIAL_STREAM_WINDOW > MAX_FRAME)
    assert.equal(h.session.closed, false)
  })

  it('a go away with a protocol error from the peer closes the link', async (t) => {
    const h = await harness()
    t.after(() => h.close())
    const closed = once(h.session, 'close')
    h.raw.write(header(FrameType.GO_AWAY, 0, 0, GoAwayCode.PROTOCOL_ERROR))
    const [err] = await closed
    assert.equal((err as MuxError).code, 'GW_ERR_MUX_PROTOCOL')
  })
})
