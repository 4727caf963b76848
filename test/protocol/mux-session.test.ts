/**
 * The yamux session end to end over real transports: a TCP socket pair and a pair of
 * ws WebSockets on 127.0.0.1.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { MuxError, FrameType, Session, type Stream } from '@gw/protocol'
import { decodeChunks } from './mux-frame-recorder.js'
import { ignore, netPair, nextStream, readAll, sessionPair, until, type TransportKind } from './mux-helpers.js'

function errorOf(stream: Stream): Promise<Error> {
  return once(stream, 'error').then(([err]) => err as Error)
}

for (const kind of ['net', 'ws'] as TransportKind[]) {
  describe(`mux session over ${kind}`, () => {
    it('carries data both ways and ends each side with FIN', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      assert.equal(a.id % 2, 1, 'the client opens odd ids')
      const b = await accepted
      assert.equal(b.id, a.id)

      const up = randomBytes(1024 * 1024 + 17)
      const down = randomBytes(700 * 1024)
      const gotUp = readAll(b)
      const gotDown = readAll(a)
      a.end(up)
      b.end(down)
      assert.deepEqual(await gotUp, up)
      assert.deepEqual(await gotDown, down)
      await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
    })

    it('the server side opens even ids', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.client)
      const s = pair.server.open()
      assert.equal(s.id % 2, 0)
      s.end('from relay')
      const c = await accepted
      assert.equal((await readAll(c)).toString(), 'from relay')
      c.end()
      await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
    })

    it('the peer sees a stream that is opened but never written', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      const b = await accepted
      assert.equal(b.id, a.id)
    })

    it('keeps writing after the peer half-closed', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      a.end('request')
      const b = await accepted
      assert.equal((await readAll(b)).toString(), 'request')
      // The client is half-closed; the server answers afterwards.
      assert.equal(pair.server.streamCount, 1)
      const reply = readAll(a)
      b.write('res')
      b.end('ponse')
      assert.equal((await reply).toString(), 'response')
      await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
    })

    it('RST from the peer destroys the stream with GW_ERR_MUX_STREAM_RESET', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      a.write('hello')
      const b = await accepted
      const failed = errorOf(a)
      b.destroy()
      const err = await failed
      assert.ok(err instanceof MuxError)
      assert.equal(err.code, 'GW_ERR_MUX_STREAM_RESET')
      assert.equal(err.streamId, a.id)
      await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
    })

    it('a stream reset by the opener fails on the acceptor while it reads', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      a.write('partial')
      const b = await accepted
      const failed = errorOf(b)
      b.resume()
      a.destroy()
      assert.equal(((await failed) as MuxError).code, 'GW_ERR_MUX_STREAM_RESET')
    })

    it('opens and completes 10,000 streams one after another and frees them all', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      pair.server.on('stream', (s: Stream) => {
        s.on('error', ignore)
        // Echo, then end: the stream finishes both ways.
        const parts: Buffer[] = []
        s.on('data', (c: Buffer) => parts.push(c))
        s.on('end', () => s.end(Buffer.concat(parts)))
      })
      for (let i = 0; i < 10_000; i++) {
        const s = pair.client.open()
        s.end(`n${i}`)
        const got = await readAll(s)
        if (got.toString() !== `n${i}`) assert.fail(`stream ${i} echoed ${got.toString()}`)
      }
      await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
    })

    it('runs 300 streams at once, past the accept backlog, and frees them all', async (t) => {
      const pair = await sessionPair(kind, {}, { acceptBacklog: 16 })
      t.after(() => pair.close())
      pair.server.on('stream', (s: Stream) => {
        s.on('error', ignore)
        s.pipe(s)
      })
      const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => {
        const s = pair.client.open()
        const reply = readAll(s)
        s.end(`stream ${i}`)
        return reply.then((b) => b.toString())
      }))
      assert.deepEqual(replies, Array.from({ length: 300 }, (_, i) => `stream ${i}`))
      await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
    })

    it('moves several large transfers at once, both ways, intact', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      pair.server.on('stream', (s: Stream) => {
        s.on('error', ignore)
        s.pipe(s)
      })
      const results = await Promise.all(Array.from({ length: 8 }, async () => {
        const payload = randomBytes(3 * 1024 * 1024)
        const s = pair.client.open()
        const echoed = readAll(s)
        // Uneven writes, so frames, windows and drains interleave across streams.
        for (let at = 0; at < payload.length;) {
          const size = Math.min(1 + Math.floor(Math.random() * 200_000), payload.length - at)
          if (!s.write(payload.subarray(at, at + size))) await once(s, 'drain')
          at += size
        }
        s.end()
        return (await echoed).equals(payload)
      }))
      assert.deepEqual(results, Array(8).fill(true))
      await until(() => pair.client.streamCount === 0 && pair.server.streamCount === 0, 'streams freed')
    })

    it('holds a writer after one window when nobody reads, with bounded memory', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      const total = 50 * 1024 * 1024
      let done = false
      a.write(Buffer.alloc(total, 7), () => {
        done = true
      })
      const b = await accepted
      // Give the link time to move anything it would move.
      await until(() => b.receiveBuffered >= 256 * 1024, 'a window to arrive')
      await new Promise((resolve) => setTimeout(resolve, 200))
      // Its window and at most one highWaterMark of the Readable (docs/protocol.md).
      const bound = 256 * 1024 + b.readableHighWaterMark
      assert.ok(b.receiveBuffered <= bound, `receiver buffers ${b.receiveBuffered} bytes (bound ${bound})`)
      assert.equal(done, false, 'the write callback is still pending')
      // Reading releases the writer and every byte arrives.
      let received = 0
      b.on('data', (c: Buffer) => {
        received += c.length
      })
      await until(() => done, 'the write callback', 20_000)
      a.end()
      await once(b, 'end')
      assert.equal(received, total)
    })

    it('a reader that pauses after its first chunk holds at most its window and one highWaterMark; resumed, every byte arrives', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      // One byte first, then one large write: its 256 KiB frames are one WebSocket message
      // each, so a paused Readable was once handed a whole frame and granted it back.
      const data = randomBytes(8 * 1024 * 1024)
      let done = false
      a.write(data.subarray(0, 1))
      a.write(data.subarray(1), () => (done = true))
      const b = await accepted
      const parts: Buffer[] = []
      await new Promise<void>((resolve) => b.once('data', (c: Buffer) => {
        parts.push(c)
        b.pause()
        resolve()
      }))
      await until(() => b.receiveBuffered >= 128 * 1024, 'the window to fill')
      let most = 0
      for (let i = 0; i < 30; i++) {
        most = Math.max(most, b.receiveBuffered)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const bound = 256 * 1024 + b.readableHighWaterMark
      assert.ok(most <= bound, `a paused reader holds ${most} bytes (bound ${bound})`)
      assert.equal(done, false, 'the writer waits')
      const rest = readAll(b)
      b.resume()
      a.end()
      assert.ok(Buffer.concat([...parts, await rest]).equals(data))
    })

    it('a keepalive timeout fails the link and every stream when the peer goes silent', async (t) => {
      const pair = await sessionPair(kind, { keepAliveInterval: 20, keepAliveTimeout: 150 })
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      a.write('x')
      await accepted
      // The server stops reading the transport: no pongs, no traffic.
      pair.transports.server.pause()
      const failed = errorOf(a)
      const [closeErr] = await once(pair.client, 'close')
      assert.equal((closeErr as MuxError).code, 'GW_ERR_MUX_KEEPALIVE_TIMEOUT')
      assert.equal(((await failed) as MuxError).code, 'GW_ERR_MUX_KEEPALIVE_TIMEOUT')
      assert.equal(pair.client.closed, true)
      assert.equal(pair.client.streamCount, 0)
    })

    it('keepalive pings measure the round trip and keep an idle link alive', async (t) => {
      // A timeout of 1 s, not 100 ms: a loaded machine can stall a test process's event
      // loop past 100 ms, and the watchdog then rightly called the link dead.
      const pair = await sessionPair(kind, { keepAliveInterval: 50, keepAliveTimeout: 1_000 }, { keepAliveInterval: 50, keepAliveTimeout: 1_000 })
      t.after(() => pair.close())
      const [rtt] = await once(pair.client, 'rtt')
      assert.equal(typeof rtt, 'number')
      assert.equal(typeof pair.client.rtt, 'number')
      await new Promise((resolve) => setTimeout(resolve, 2_500))
      assert.equal(pair.client.closed, false)
      assert.equal(pair.server.closed, false)
      const measured = await pair.server.ping()
      assert.ok(measured >= 0)
    })

    it('pings often enough to keep an idle link alive when the interval exceeds the timeout', async (t) => {
      // Pings every 500 ms (half the timeout), not every 10 min: without that the link
      // would die at 1 s. 1 s rather than 100 ms so that an event-loop stall under load
      // is not taken for a silent peer.
      const options = { keepAliveInterval: 600_000, keepAliveTimeout: 1_000 }
      const pair = await sessionPair(kind, options, options)
      t.after(() => pair.close())
      await new Promise((resolve) => setTimeout(resolve, 2_600))
      assert.equal(pair.client.closed, false)
      assert.equal(pair.server.closed, false)
    })

    it('link death fails every open stream at once and emits close once', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const streams: Stream[] = []
      for (let i = 0; i < 5; i++) {
        const s = pair.client.open()
        s.write('x')
        streams.push(s)
      }
      await until(() => pair.server.streamCount === 5, 'streams on the server')
      const errors = Promise.all(streams.map(errorOf))
      let closes = 0
      pair.client.on('close', () => closes++)
      const serverClosed = once(pair.server, 'close')
      pair.transports.server.destroy()
      const errs = await errors
      for (const err of errs) assert.equal((err as MuxError).code, 'GW_ERR_MUX_CLOSED')
      await serverClosed
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.equal(closes, 1)
      assert.equal(pair.client.streamCount, 0)
      assert.throws(() => pair.client.open(), (err: MuxError) => err.code === 'GW_ERR_MUX_CLOSED')
      await assert.rejects(pair.client.ping(), (err: MuxError) => err.code === 'GW_ERR_MUX_CLOSED')
    })

    it('close() destroys open streams with the given error and the peer learns', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      a.write('x')
      const b = await accepted
      const local = errorOf(a)
      const remote = errorOf(b)
      const peerClosed = once(pair.server, 'close')
      const reason = new Error('shutting down')
      pair.client.close(reason)
      assert.equal(await local, reason)
      assert.equal(((await remote) as MuxError).code, 'GW_ERR_MUX_CLOSED')
      const [peerErr] = await peerClosed
      assert.ok(peerErr instanceof MuxError)
    })

    it('goAway refuses new inbound streams while open ones finish', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const accepted = nextStream(pair.server)
      const a = pair.client.open()
      a.write('before')
      const b = await accepted
      pair.server.goAway()
      await until(() => {
        try {
          pair.client.open().destroy()
          return false
        } catch (err) {
          return (err as MuxError).code === 'GW_ERR_MUX_GOAWAY'
        }
      }, 'the client to see the go away')
      // The stream opened before the go away still works both ways.
      const reply = readAll(a)
      a.end(' after')
      assert.equal((await readAll(b)).toString(), 'before after')
      b.end('ok')
      assert.equal((await reply).toString(), 'ok')
      assert.equal(pair.client.closed, false)
    })

    it('goAway({ acceptRacing }) takes the streams the peer opened before it heard, then refuses', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      const served: string[] = []
      pair.server.on('stream', (s) => {
        void readAll(s).then((b) => {
          served.push(b.toString())
          s.end('ok')
        })
      })
      let goaways = 0
      pair.client.on('goaway', () => goaways++)
      pair.server.goAway({ acceptRacing: true })
      assert.equal(pair.server.goingAway, true)
      // Opened in the same turn as the GoAway leaves: it races it, and is still served.
      const racing = pair.client.open()
      const reply = readAll(racing)
      racing.end('racing')
      await pair.server.drainRacing()
      assert.equal((await reply).toString(), 'ok')
      assert.deepEqual(served, ['racing'])
      assert.equal(goaways, 1)
      assert.equal(pair.client.peerGoingAway, true)
      assert.throws(() => pair.client.open(), (err: MuxError) => err.code === 'GW_ERR_MUX_GOAWAY')
    })

    it('a stream opened after our own goAway is reset', async (t) => {
      const pair = await sessionPair(kind)
      t.after(() => pair.close())
      let seen = 0
      pair.server.on('stream', () => seen++)
      pair.server.goAway()
      // The client may race the GoAway: whatever it opens meanwhile is reset.
      await new Promise((resolve) => setTimeout(resolve, 20))
      let stream: Stream | undefined
      try {
        stream = pair.client.open()
      } catch (err) {
        assert.equal((err as MuxError).code, 'GW_ERR_MUX_GOAWAY')
      }
      if (stream) {
        const err = await errorOf(stream)
        assert.equal((err as MuxError).code, 'GW_ERR_MUX_STREAM_RESET')
      }
      assert.equal(seen, 0)
    })

    it('streams that arrive before a listener wait in the backlog; overflow is reset', async (t) => {
      const pair = await sessionPair(kind, {}, { acceptBacklog: 3 })
      t.after(() => pair.close())
      const opened: Stream[] = []
      for (let i = 0; i < 4; i++) {
        const s = pair.client.open()
        s.end(`s${i}`)
        opened.push(s)
      }
      const reset = errorOf(opened[3]!)
      assert.equal(((await reset) as MuxError).code, 'GW_ERR_MUX_STREAM_RESET')
      const got: string[] = []
      pair.server.on('stream', (s: Stream) => {
        s.on('error', ignore)
        void readAll(s).then((b) => got.push(b.toString()))
      })
      await until(() => got.length === 3, 'backlogged streams')
      assert.deepEqual(got.sort(), ['s0', 's1', 's2'])
    })

    it('refuses to open past maxStreams', async (t) => {
      const pair = await sessionPair(kind, { maxStreams: 2 })
      t.after(() => pair.close())
      pair.client.open()
      pair.client.open()
      assert.throws(() => pair.client.open(), (err: MuxError) => err.code === 'GW_ERR_MUX_STREAM_LIMIT')
    })
  })
}

describe('mux stream writes', () => {
  it('coalesces queued writes into one data frame, header and payload uncopied', async (t) => {
    const pair = await netPair()
    t.after(() => pair.close())
    const session = new Session(pair.client, { client: true, keepAliveInterval: 0 })
    t.after(() => session.close())
    const received: Buffer[] = []
    pair.server.on('data', (c: Buffer) => received.push(c))
    const s = session.open()
    s.on('error', ignore)
    // The message layer writes a 5-byte header, then the payload.
    s.write(Buffer.from([3, 0, 0, 0, 11]))
    s.write(Buffer.from('hello world'))
    s.write(Buffer.from([3, 0, 0, 0, 2]))
    s.write(Buffer.from('!!'))
    await until(() => decodeChunks([Buffer.concat(received)]).filter((f) => f.type === FrameType.DATA).length >= 1, 'data frames')
    await new Promise((resolve) => setTimeout(resolve, 20))
    const data = decodeChunks([Buffer.concat(received)]).filter((f) => f.type === FrameType.DATA)
    // Writes made in one tick share one frame.
    assert.deepEqual(data.map((f) => f.length), [23])
  })

  for (const kind of ['net', 'ws'] as TransportKind[]) it(`memory stays bounded by maxWindow after the window has grown (${kind}), then paused`, async (t) => {
    const maxWindow = 1024 * 1024
    const options = { keepAliveInterval: 1000, maxWindow }
    const pair = await sessionPair(kind, options, options)
    t.after(() => pair.close())
    await pair.client.ping()
    await pair.server.ping()
    const accepted = nextStream(pair.server)
    const a = pair.client.open()
    const chunk = Buffer.alloc(64 * 1024, 1)
    let writing = true
    const pump = async () => {
      while (writing) {
        if (!a.write(chunk)) await once(a, 'drain')
      }
    }
    void pump().catch(ignore)
    const b = await accepted
    // Read fast for a while so the window can grow, then stop reading.
    let received = 0
    b.on('data', (c: Buffer) => {
      received += c.length
    })
    await until(() => received > 64 * 1024 * 1024, '64 MiB read', 20_000)
    b.pause()
    await new Promise((resolve) => setTimeout(resolve, 300))
    const buffered = b.receiveBuffered
    writing = false
    const bound = maxWindow + b.readableHighWaterMark
    assert.ok(buffered <= bound, `receiver buffers ${buffered} bytes with maxWindow ${maxWindow} (bound ${bound})`)
  })

  it('a session on a transport that is already gone closes at once', async () => {
    const pair = await netPair()
    pair.client.destroy()
    await once(pair.client, 'close')
    const session = new Session(pair.client, { client: true })
    const [err] = await once(session, 'close')
    assert.equal((err as MuxError).code, 'GW_ERR_MUX_CLOSED')
    await pair.close()
  })
})
