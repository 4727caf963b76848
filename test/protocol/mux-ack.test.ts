/**
 * The accepting side owes the opener an ACK. It rides on the stream's first frame when
 * one follows soon (a response, in gw), and goes out bare after 50 ms otherwise.
 */
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { encodeFrameHeader, FrameDecoder, FrameFlag, FrameType, Session } from '@gw/protocol'
import { ignore, netPair, nextStream, until } from './mux-helpers.js'

/** Every frame header the server side writes, as [type, flags, streamId]. */
async function watchedPair() {
  const pair = await netPair()
  const frames: Array<[number, number, number]> = []
  const decoder = new FrameDecoder({ onFrame: (type, flags, id) => void frames.push([type, flags, id]), onData() {}, onDataEnd() {} }, { maxFrameSize: 1 << 20 })
  // The server session writes to pair.server; its bytes arrive raw at pair.client.
  pair.client.on('data', (chunk: Buffer) => decoder.push(chunk))
  const server = new Session(pair.server, { client: false, keepAliveInterval: 0 })
  return { pair, server, frames }
}

it('puts the ACK on the first data frame when the answer comes at once', async (t) => {
  const { pair, server, frames } = await watchedPair()
  t.after(() => pair.close())
  server.on('stream', (stream) => {
    stream.on('error', ignore)
    stream.on('data', () => {})
    stream.end('answer')
  })
  // Open a stream by hand: SYN on a window update for stream 1.
  pair.client.write(encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 1, 0))
  await until(() => frames.some(([type, flags]) => type === FrameType.DATA && flags & FrameFlag.ACK), 'a data frame with ACK')
  const bareAcks = frames.filter(([type, flags]) => type === FrameType.WINDOW_UPDATE && flags === FrameFlag.ACK)
  assert.equal(bareAcks.length, 0, 'no ACK went out on its own')
  server.close()
})

it('sends a bare ACK within 50 ms when the stream has nothing to say', async (t) => {
  const { pair, server, frames } = await watchedPair()
  t.after(() => pair.close())
  const accepted = nextStream(server)
  pair.client.write(encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 1, 0))
  const stream = await accepted
  stream.on('error', ignore)
  stream.on('data', () => {})
  await until(() => frames.some(([type, flags, id]) => type === FrameType.WINDOW_UPDATE && flags === FrameFlag.ACK && id === 1), 'a bare ACK', 2000)
  server.close()
})

it('ACKs a burst of opens at once, without the 50 ms wait: the opener may be blocked on them', async (t) => {
  const pair = await netPair()
  t.after(() => pair.close())
  // Count the ACKs the session hands its transport, synchronously, as it writes them.
  let acks = 0
  const write = pair.server.write.bind(pair.server)
  pair.server.write = ((chunk: Buffer, ...rest: unknown[]) => {
    if (chunk.length === 12 && chunk[1] === FrameType.WINDOW_UPDATE && chunk.readUInt16BE(2) === FrameFlag.ACK) acks++
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof pair.server.write
  const server = new Session(pair.server, { client: false, keepAliveInterval: 0 })
  t.after(() => server.close())
  // Nobody answers: only the burst rule can send these ACKs before the 50 ms timer.
  let streams = 0
  let acksAtLast = -1
  server.on('stream', (stream) => {
    stream.on('error', ignore)
    if (++streams === 256) acksAtLast = acks
  })
  pair.client.write(Buffer.concat(Array.from({ length: 256 }, (_, i) => encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.SYN, 2 * i + 1, 0))))
  await until(() => streams === 256, '256 streams')
  // Written in the turn that read the SYNs, before the last stream was even handed over.
  assert.equal(acksAtLast, 256)
})

it('with maxUnackedStreams in flight, open() queues the SYN; writes and end() wait for it', async (t) => {
  const pair = await netPair()
  t.after(() => pair.close())
  const frames: Array<[number, number, number, number]> = []
  const decoder = new FrameDecoder({ onFrame: (type, flags, id, length) => void frames.push([type, flags, id, length]), onData() {}, onDataEnd() {} }, { maxFrameSize: 1 << 20 })
  pair.client.on('data', (chunk: Buffer) => decoder.push(chunk))
  // Our session opens (even ids, as the relay); the raw peer decides when to ACK.
  const session = new Session(pair.server, { client: false, keepAliveInterval: 0, maxUnackedStreams: 2 })
  const streams = [session.open(), session.open(), session.open()]
  for (const s of streams) s.on('error', ignore)
  streams[2]!.end('queued bytes')
  const syns = (): number[] => frames.filter(([type, flags]) => type === FrameType.WINDOW_UPDATE && flags & FrameFlag.SYN).map(([, , id]) => id)
  await until(() => syns().length === 2, 'two SYNs')
  await new Promise((resolve) => setTimeout(resolve, 30))
  assert.deepEqual(syns(), [2, 4], 'the third SYN waits')
  assert.equal(session.queuedOpens, 1)
  assert.equal(frames.some(([, , id]) => id === 6), false, 'nothing of the third stream left')
  // The peer ACKs the first: the third opens, and its data and FIN follow.
  pair.client.write(encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.ACK, 2, 0))
  await until(() => frames.some(([type, flags, id]) => id === 6 && type === FrameType.WINDOW_UPDATE && flags & FrameFlag.FIN), 'the FIN of stream 6')
  const third = frames.filter(([, , id]) => id === 6)
  assert.equal(third[0]![1] & FrameFlag.SYN, FrameFlag.SYN, 'SYN first')
  assert.ok(third.some(([type, , , length]) => type === FrameType.DATA && length === 'queued bytes'.length))
  assert.equal(session.queuedOpens, 0)
  // A queued stream destroyed before its SYN leaves costs the peer nothing.
  const a = session.open()
  const b = session.open()
  a.on('error', ignore)
  b.on('error', ignore)
  assert.equal(session.queuedOpens, 2)
  b.destroy()
  assert.equal(session.queuedOpens, 1)
  session.close()
})

it('a stream that ends without ever being ACKed gives its slot back, as hashicorp does', async (t) => {
  // hashicorp never ACKs a stream whose FIN it read before accepting it.
  const pair = await netPair()
  t.after(() => pair.close())
  const frames: Array<[number, number, number]> = []
  const decoder = new FrameDecoder({ onFrame: (type, flags, id) => void frames.push([type, flags, id]), onData() {}, onDataEnd() {} }, { maxFrameSize: 1 << 20 })
  pair.client.on('data', (chunk: Buffer) => decoder.push(chunk))
  const session = new Session(pair.server, { client: false, keepAliveInterval: 0, maxUnackedStreams: 1 })
  t.after(() => session.close())
  const first = session.open()
  first.on('error', ignore)
  first.resume()
  const second = session.open()
  second.on('error', ignore)
  assert.equal(session.queuedOpens, 1)
  first.end()
  pair.client.write(encodeFrameHeader(FrameType.WINDOW_UPDATE, FrameFlag.FIN, 2, 0))
  await until(() => frames.some(([type, flags, id]) => type === FrameType.WINDOW_UPDATE && flags & FrameFlag.SYN && id === 4), 'the second SYN')
  assert.equal(session.queuedOpens, 0)
})
