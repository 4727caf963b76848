/**
 * Streams that start with a line naming where they go, then carry the agent protocol
 * byte for byte: a relay's stream to the relay that holds a name (cluster/peer-link.ts),
 * and an agent's stream for another agent's internal endpoint (internal-endpoints.ts).
 * The relay reads the line and splices the rest onto a stream of the agent it names,
 * without decoding it.
 */
import type { Stream } from '@gw/protocol'

/**
 * The stream's first line (without the '\n'), as latin1; the bytes after it stay in
 * the stream for whoever reads next. A line longer than `max`, or none within
 * `timeoutMs`, resets the stream.
 */
export function readFirstLine(stream: Stream, max: number, timeoutMs: number, onLine: (line: string) => void): void {
  stream.on('error', () => {})
  let line: Buffer = Buffer.alloc(0)
  const timer = setTimeout(() => stream.destroy(), timeoutMs)
  timer.unref()
  const onData = (chunk: Buffer): void => {
    line = line.length === 0 ? chunk : Buffer.concat([line, chunk])
    const nl = line.indexOf(0x0a)
    if (nl === -1) {
      if (line.length > max) {
        clearTimeout(timer)
        stream.off('data', onData)
        stream.destroy()
      }
      return
    }
    clearTimeout(timer)
    stream.off('data', onData)
    stream.pause()
    if (line.length > nl + 1) stream.unshift(line.subarray(nl + 1))
    onLine(line.subarray(0, nl).toString('latin1'))
  }
  stream.once('close', () => clearTimeout(timer))
  stream.on('data', onData)
}

/** Bytes both ways with backpressure; a reset on either side resets the other. */
export function splice(a: Stream, b: Stream): void {
  a.on('error', () => {})
  b.on('error', () => {})
  a.pipe(b)
  b.pipe(a)
  const cut = (from: Stream, to: Stream) => (): void => {
    if (!(from.readableEnded && from.writableFinished)) to.destroy()
  }
  a.once('close', cut(a, b))
  b.once('close', cut(b, a))
}
