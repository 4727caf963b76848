// The TCP loads of scenario 10 and tools/cluster-tcp.mjs, against an echo upstream
// (procs/echo-upstream.mjs) through any path: connections per second (connect, a few
// bytes echoed, close) and bulk echo (one connection, bytes written and read back at
// once). Every byte read back is compared with what was written, so a path that loses,
// reorders or corrupts bytes fails instead of reporting a figure.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { cpuOf } from './children.mjs'

const PATTERN = randomBytes(1024 * 1024)

/**
 * One connection to host:port: write `bytes` bytes (a repeated random 1 MiB pattern, with
 * backpressure), half-close, read as many back, comparing each chunk with what was sent;
 * resolves when the connection closes with everything echoed.
 */
export function echoOnce(host, port, bytes) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true, noDelay: true })
    let sent = 0
    let got = 0
    let bad
    const write = () => {
      while (sent < bytes) {
        const at = sent % PATTERN.length
        const piece = PATTERN.subarray(at, Math.min(PATTERN.length, at + bytes - sent))
        sent += piece.length
        if (!socket.write(piece)) return void socket.once('drain', write)
      }
      socket.end()
    }
    socket.on('connect', write)
    socket.on('data', (d) => {
      // Compare in place: a chunk may straddle the pattern's end.
      for (let off = 0; off < d.length && bad === undefined;) {
        const at = (got + off) % PATTERN.length
        const n = Math.min(d.length - off, PATTERN.length - at)
        if (!d.subarray(off, off + n).equals(PATTERN.subarray(at, at + n))) bad = got + off
        off += n
      }
      got += d.length
    })
    socket.on('error', reject)
    socket.on('close', () => {
      if (bad !== undefined) reject(new Error(`byte ${bad} came back different`))
      else if (got !== bytes) reject(new Error(`echoed ${got} of ${bytes} bytes`))
      else resolve()
    })
  })
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/**
 * `parallel` loops of one connection after another for `seconds`: connect, `bytes` bytes
 * echoed, close. Returns connections/s, p50/p99 of connect-to-close (ms), errors (the
 * first kept), and CPU µs per connection of each pid in `pids` ({name: pid}).
 */
export async function connectionsPerSecond(host, port, { seconds = 5, parallel = 8, bytes = 16, pids = {} } = {}) {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuOf(pid)]))
  const began = performance.now()
  const end = began + seconds * 1000
  let errors = 0
  let firstError
  const latencies = []
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (performance.now() < end) {
      const t = performance.now()
      try {
        await echoOnce(host, port, bytes)
        latencies.push(performance.now() - t)
      } catch (err) {
        errors++
        firstError ??= `${host}:${port}: ${err.message}`
      }
    }
  }))
  const elapsed = (performance.now() - began) / 1000
  const done = latencies.length
  latencies.sort((x, y) => x - y)
  const cpuPerConnection = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (cpuOf(pid) - before[k]) / Math.max(1, done)]))
  return { perSecond: done / elapsed, done, errors, firstError, p50: percentile(latencies, 50), p99: percentile(latencies, 99), cpuPerConnection }
}

/**
 * One connection carrying `bytes` each way at once (written and echoed back). Returns the
 * seconds it took and CPU µs per MiB (of `bytes`) of each pid in `pids`.
 */
export async function bulkEcho(host, port, bytes, { pids = {} } = {}) {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuOf(pid)]))
  const t = performance.now()
  await echoOnce(host, port, bytes)
  const seconds = (performance.now() - t) / 1000
  const mib = bytes / (1024 * 1024)
  return { seconds, mibps: mib / seconds, cpuPerMiB: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (cpuOf(pid) - before[k]) / mib])) }
}
