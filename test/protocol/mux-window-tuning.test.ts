/**
 * Window auto-tuning: the receive window grows while the reader keeps up, and shrinks
 * back toward the initial window once data has to wait for the reader, so a reader
 * that turns slow after a fast start does not keep a grown window filled.
 */
import assert from 'node:assert/strict'
import { it, type TestContext } from 'node:test'
import { INITIAL_STREAM_WINDOW, type Stream } from '@gw/protocol'
import { nextStream, sessionPair, until } from './mux-helpers.js'

const target = (stream: object): number => (stream as unknown as { recvTarget: number }).recvTarget

/**
 * A stream whose writer sends 64 KiB pieces as fast as the window lets it, on a session
 * pair that knows its RTT (growth needs one). `stop()` ends the writing.
 */
async function pumpedStream(t: TestContext): Promise<{ reader: Stream; stop(): void }> {
  const pair = await sessionPair('net', {}, { keepAliveInterval: 50 })
  t.after(() => pair.close())
  await pair.server.ping()
  const accepted = nextStream(pair.server)
  const writer = pair.client.open()
  const chunk = Buffer.alloc(64 * 1024)
  let writing = true
  const pump = (): void => {
    while (writing && writer.write(chunk)) { /* until backpressure */ }
  }
  writer.on('drain', pump)
  pump()
  return { reader: await accepted, stop: () => { writing = false } }
}

it('grows the window for a fast reader and shrinks it when the reader falls behind', async (t) => {
  const { reader, stop } = await pumpedStream(t)

  // Fast: read everything as it comes.
  let read = 0
  const onData = (c: Buffer): void => {
    read += c.length
  }
  reader.on('data', onData)
  await until(() => read > 64 * 1024 * 1024, '64 MiB read', 20_000)
  const grown = target(reader)
  assert.ok(grown > INITIAL_STREAM_WINDOW, `the window grew (${grown})`)

  // Slow: 64 KiB every 10 ms, so data waits for the reader.
  reader.off('data', onData)
  reader.pause()
  const slow = setInterval(() => {
    while (reader.read(64 * 1024) !== null) { /* take one piece at most per tick */ break }
  }, 10)
  t.after(() => clearInterval(slow))
  await until(() => target(reader) < grown, 'the window to shrink', 20_000)
  stop()
  clearInterval(slow)
  assert.ok(target(reader) < grown)
})

it('does not grow the window for a slow reader that reads in bursts', async (t) => {
  // A client behind the relay reads whenever its kernel buffers free up: nothing for a
  // while, then a few hundred KiB at once. Each burst is fast; the reader is not.
  const { reader, stop } = await pumpedStream(t)
  reader.pause()
  let read = 0
  let largest = 0
  let widest = 0
  const burst = setInterval(() => {
    largest = Math.max(largest, reader.receiveBuffered)
    let piece: Buffer | null
    let taken = 0
    while (taken < 384 * 1024 && (piece = reader.read()) !== null) taken += piece.length
    read += taken
  }, 100)
  const watch = setInterval(() => { widest = Math.max(widest, target(reader)) }, 1)
  t.after(() => clearInterval(watch))
  t.after(() => clearInterval(burst))
  await until(() => read >= 4 * 1024 * 1024, '4 MiB read in bursts', 20_000)
  stop()
  clearInterval(burst)
  clearInterval(watch)
  assert.equal(widest, INITIAL_STREAM_WINDOW, 'the window never grew')
  assert.ok(largest <= 2 * INITIAL_STREAM_WINDOW, `the reader's side held ${largest} bytes`)
})
