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
