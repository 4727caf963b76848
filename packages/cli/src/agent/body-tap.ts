/**
 * Observes a body on its way through without consuming it. A 'data' listener would do
 * that too, but it starts the stream flowing at once, and chunks emitted before the
 * real consumer (undici, connecting to the upstream) attaches would be lost.
 */
import { Transform, type Readable } from 'node:stream'

export function tapBody(source: Readable, onChunk: (chunk: Buffer) => void): Readable {
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onChunk(chunk)
      callback(null, chunk)
    },
  })
  source.on('error', (err) => tap.destroy(err))
  tap.on('close', () => {
    if (!source.readableEnded) source.destroy()
  })
  return source.pipe(tap)
}
