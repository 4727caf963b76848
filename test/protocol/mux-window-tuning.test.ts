/**
 * Window auto-tuning: the receive window grows while the reader keeps up, and shrinks
 * back toward the initial window once data has to wait for the reader, so a reader
 * that turns slow after a fast start does not keep a grown window filled.
 */
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { INITIAL_STREAM_WINDOW } from '@gw/protocol/mux/index'
import { nextStream, sessionPair, until } from './mux-helpers.js'

const target = (stream: object): number => (stream as unknown as { recvTarget: number }).recvTarget

it('grows the window for a fast reader and shrinks it when the reader falls behind', async (t) => {
  const pair = await sessionPair('net', {}, { keepAliveInterval: 50 })
  t.after(() => pair.close())
  await pair.server.ping() // an RTT, which growth needs
  const accepted = nextStream(pair.server)
  const writer = pair.client.open()
  const chunk = Buffer.alloc(64 * 1024)
  let writing = true
  const pump = (): void => {
    while (writing && writer.write(chunk)) { /* until backpressure */ }
  }
  writer.on('drain', pump)
  pump()
  const reader = await accepted

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
  writing = false
  clearInterval(slow)
  assert.ok(target(reader) < grown)
})
