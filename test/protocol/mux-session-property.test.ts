/**
 * Session-level property test: any mix of write sizes on several streams, over a
 * transport that re-cuts every write at random points, delivers every byte in order and
 * frees every stream.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Duplex } from 'node:stream'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { Session, type Stream } from '@gw/protocol'
import { ignore, readAll, until } from './mux-helpers.js'

/** One end of an in-memory pipe that delivers each write as pieces cut by `cuts`. */
class CuttingEnd extends Duplex {
  peer!: CuttingEnd
  constructor(private readonly cuts: () => number) {
    super()
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: () => void): void {
    let at = 0
    while (at < chunk.length) {
      const size = Math.max(1, Math.min(this.cuts(), chunk.length - at))
      this.peer.push(chunk.subarray(at, at + size))
      at += size
    }
    // Deliver asynchronously, as a socket would.
    setImmediate(callback)
  }

  override _final(callback: () => void): void {
    this.peer.push(null)
    callback()
  }
}

function cuttingPair(cuts: () => number): [CuttingEnd, CuttingEnd] {
  const a = new CuttingEnd(cuts)
  const b = new CuttingEnd(cuts)
  a.peer = b
  b.peer = a
  return [a, b]
}

describe('yamux session properties', () => {
  it('any writes over any transport chunking arrive intact and every stream is freed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.integer({ min: 0, max: 90_000 }), { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 16 }),
        async (streamWrites, cutSizes) => {
          let next = 0
          const cuts = () => cutSizes[next++ % cutSizes.length]!
          const [left, right] = cuttingPair(cuts)
          const client = new Session(left, { client: true, keepAliveInterval: 0 })
          const server = new Session(right, { client: false, keepAliveInterval: 0 })
          server.on('stream', (s: Stream) => {
            s.on('error', ignore)
            s.pipe(s)
          })
          try {
            await Promise.all(streamWrites.map(async (sizes, n) => {
              const s = client.open()
              s.on('error', ignore)
              const expected = Buffer.concat(sizes.map((size, i) => Buffer.alloc(size, (n * 31 + i) & 0xff)))
              const echoed = readAll(s)
              for (let i = 0; i < sizes.length; i++) {
                if (!s.write(Buffer.alloc(sizes[i]!, (n * 31 + i) & 0xff))) await once(s, 'drain')
              }
              s.end()
              assert.ok((await echoed).equals(expected), `stream ${n} echoed other bytes`)
            }))
            await until(() => client.streamCount === 0 && server.streamCount === 0, 'streams freed')
          } finally {
            client.close()
            server.close()
          }
        },
      ),
      { numRuns: 40 },
    )
  })
})
