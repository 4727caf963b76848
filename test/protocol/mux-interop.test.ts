/**
 * Wire compatibility with another yamux implementation: yamux-js on one end of a TCP
 * socket pair, our Session on the other. yamux-js has bugs of its own (it drops a frame
 * split across reads and never delivers FIN), so the exchanges here are small,
 * request/response paced, and never rely on its FIN handling.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { describe, it } from 'node:test'
import yamux from 'yamux-js'
import { MuxError, Session, type Stream } from '@gw/protocol'
import { ignore, netPair, type TransportPair } from './mux-helpers.js'

const YAMUX_JS_CONFIG = { enableKeepAlive: false, logger: () => {} }

/** Read from a stream until `bytes` bytes have arrived. */
function readBytes(stream: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let got = 0
    const onData = (chunk: Buffer) => {
      parts.push(chunk)
      got += chunk.length
      if (got >= bytes) {
        stream.off('data', onData)
        stream.off('error', reject)
        stream.pause()
        resolve(Buffer.concat(parts))
      }
    }
    stream.on('data', onData)
    stream.once('error', reject)
    // Paused by the previous read; a new 'data' listener does not resume a paused stream.
    stream.resume()
  })
}

async function withYamuxJs(
  ourRole: 'client' | 'server',
): Promise<{ ours: Session; theirs: InstanceType<typeof yamux.Client>; accepted: Duplex[]; pair: TransportPair }> {
  const pair = await netPair()
  const accepted: Duplex[] = []
  const onStream = (d: Duplex) => {
    d.on('error', ignore)
    accepted.push(d)
  }
  // yamux-js is a Transform: socket bytes in, frames out.
  const theirs = ourRole === 'client' ? new yamux.Server(onStream, YAMUX_JS_CONFIG) : new yamux.Client(YAMUX_JS_CONFIG)
  theirs.on('error', ignore)
  pair.server.pipe(theirs).pipe(pair.server)
  const ours = new Session(pair.client, { client: ourRole === 'client', keepAliveInterval: 0 })
  return { ours, theirs, accepted, pair }
}

describe('interop with yamux-js', () => {
  it('our client opens a stream to a yamux-js server and data flows both ways', async (t) => {
    const { ours, theirs, accepted, pair } = await withYamuxJs('client')
    t.after(async () => {
      ours.close()
      await pair.close()
    })
    const stream = ours.open()
    stream.on('error', ignore)
    stream.write('hello from gw')
    await until(() => accepted.length === 1)
    const remote = accepted[0]!
    assert.equal((await readBytes(remote, 13)).toString(), 'hello from gw')
    remote.write('hello from yamux-js')
    assert.equal((await readBytes(stream, 19)).toString(), 'hello from yamux-js')
    // Several round trips on the same stream keep order and bytes.
    for (let i = 0; i < 20; i++) {
      const msg = `ping ${i} `.repeat(50)
      stream.write(msg)
      const got = await readBytes(remote, msg.length)
      remote.write(got)
      assert.equal((await readBytes(stream, msg.length)).toString(), msg)
    }
    assert.equal(theirs.isClosed(), false)
  })

  it('a yamux-js client opens a stream to our server and data flows both ways', async (t) => {
    const { ours, theirs, pair } = await withYamuxJs('server')
    t.after(async () => {
      ours.close()
      await pair.close()
    })
    const acceptedP = once(ours, 'stream')
    const stream = theirs.open()
    stream.on('error', ignore)
    stream.write('opened by yamux-js')
    const [ourStream] = (await acceptedP) as [Stream]
    ourStream.on('error', ignore)
    assert.equal(ourStream.id % 2, 1, 'yamux-js as client uses odd ids')
    assert.equal((await readBytes(ourStream, 18)).toString(), 'opened by yamux-js')
    ourStream.write('answered by gw')
    assert.equal((await readBytes(stream, 14)).toString(), 'answered by gw')
  })

  it('many streams each way keep their data apart', async (t) => {
    const { ours, accepted, pair } = await withYamuxJs('client')
    t.after(async () => {
      ours.close()
      await pair.close()
    })
    const streams = Array.from({ length: 20 }, () => ours.open())
    for (const s of streams) s.on('error', ignore)
    await until(() => accepted.length === 20)
    for (let i = 0; i < streams.length; i++) {
      streams[i]!.write(`stream-${i}`)
      const got = await readBytes(accepted[i]!, `stream-${i}`.length)
      assert.equal(got.toString(), `stream-${i}`)
      accepted[i]!.write(`reply-${i}`)
      assert.equal((await readBytes(streams[i]!, `reply-${i}`.length)).toString(), `reply-${i}`)
    }
  })

  it('yamux-js answers our ping, and we answer its', async (t) => {
    const { ours, pair } = await withYamuxJs('client')
    t.after(async () => {
      ours.close()
      await pair.close()
    })
    const rtt = await ours.ping()
    assert.ok(rtt >= 0)
    assert.equal(ours.rtt, rtt)
  })

  it('a yamux-js close (GoAway, then end) closes our session and its streams', async (t) => {
    const { ours, theirs, accepted, pair } = await withYamuxJs('client')
    t.after(() => pair.close())
    const stream = ours.open()
    const failed = once(stream, 'error')
    await until(() => accepted.length === 1)
    const closed = once(ours, 'close')
    theirs.close()
    const [err] = await closed
    assert.equal((err as MuxError).code, 'GW_ERR_MUX_CLOSED')
    assert.equal(((await failed)[0] as MuxError).code, 'GW_ERR_MUX_CLOSED')
    assert.throws(() => ours.open(), (e: MuxError) => e.code === 'GW_ERR_MUX_CLOSED')
  })
})

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
