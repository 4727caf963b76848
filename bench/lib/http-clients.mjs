// The clients the scenarios drive. autocannon for saturation (scenario 1); the rest are
// small purpose-built clients on node:http because autocannon's latency histogram has
// 1 ms resolution (scenario 2 needs tenths of a millisecond) and it cannot do one-request
// bulk transfers, thousands of simultaneous connections or a throttled reader.
import autocannon from 'autocannon'
import { setMaxListeners } from 'node:events'
import http from 'node:http'
import https from 'node:https'

const MiB = 1024 * 1024

function baseOptions(target, path, method = 'GET') {
  return {
    host: '127.0.0.1',
    port: target.port,
    path,
    method,
    headers: { host: target.host, ...target.extraHeaders },
    // The relay's certificate is self-signed per run; the CA is passed so the TLS work is
    // real, and verification is off so the bench does not depend on the cert's SANs.
    ...(target.protocol === 'https' ? { ca: target.ca, servername: target.host.split(':')[0], rejectUnauthorized: false } : {}),
  }
}

function mod(target) {
  return target.protocol === 'https' ? https : http
}

/** One request, body read whole. */
export function request(target, { path, method = 'GET', body, timeoutMs = 10_000, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = mod(target).request({ ...baseOptions(target, path, method), agent }, (res) => {
      let bytes = 0
      res.on('data', (c) => { bytes += c.length })
      res.on('end', () => resolve({ status: res.statusCode, bytes, headers: res.headers }))
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * Saturation with autocannon: req/s, and latency percentiles (ms) computed here from every
 * response's time, since autocannon's own histogram rounds to whole milliseconds and a
 * direct p50 reads as 0.
 */
export async function saturate(target, { path = '/small', connections = 64, duration = 10, headers = {} } = {}) {
  const times = []
  const instance = autocannon({
    url: `${target.protocol}://127.0.0.1:${target.port}${path}`,
    connections,
    duration,
    pipelining: 1,
    headers: { host: target.host, ...target.extraHeaders, ...headers },
    ...(target.protocol === 'https' ? { servername: target.host.split(':')[0], tlsOptions: { ca: target.ca } } : {}),
    timeout: 10,
  })
  instance.on('response', (_client, status, _bytes, responseTime) => { if (status < 300) times.push(responseTime) })
  const result = await instance
  times.sort((a, b) => a - b)
  return {
    rps: result.requests.average,
    total: result.requests.total,
    ok: result['2xx'],
    errors: result.errors + result.timeouts + result.non2xx,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/**
 * Requests sent at a fixed rate over a pool of keep-alive connections; latency of each is
 * taken with hrtime from the moment it is written, in ms with µs resolution.
 */
export async function fixedRate(target, { path = '/small', rate = 1000, duration = 10, connections = 32 } = {}) {
  const agent = new (target.protocol === 'https' ? https : http).Agent({ keepAlive: true, maxSockets: connections, scheduling: 'lifo' })
  const latencies = []
  let errors = 0
  let inflight = 0
  const total = Math.round(rate * duration)
  const one = () => new Promise((resolve) => {
    const start = process.hrtime.bigint()
    inflight++
    const req = mod(target).request({ ...baseOptions(target, path), agent }, (res) => {
      res.on('data', () => {})
      res.on('end', () => {
        if (res.statusCode === 200) latencies.push(Number(process.hrtime.bigint() - start) / 1e6)
        else errors++
        inflight--
        resolve()
      })
    })
    req.on('error', () => { errors++; inflight--; resolve() })
    req.end()
  })
  // Warm the pool so the first second does not measure TCP and TLS handshakes.
  await Promise.all(Array.from({ length: Math.min(connections, 16) }, one))
  latencies.length = 0
  errors = 0
  const pending = []
  const began = performance.now()
  let sent = 0
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - began) / 1000) * rate))
      while (sent < due) { pending.push(one()); sent++ }
      if (sent >= total) return resolve()
      setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.all(pending)
  agent.destroy()
  latencies.sort((a, b) => a - b)
  return {
    sent,
    ok: latencies.length,
    errors,
    achievedRate: sent / ((performance.now() - began) / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }
}

/** One GET of `bytes`; MiB/s from request written to last byte read. */
export function bulkDownload(target, bytes, timeoutMs = 600_000) {
  return new Promise((resolve, reject) => {
    const began = performance.now()
    const req = mod(target).request({ ...baseOptions(target, `/bulk?bytes=${bytes}`), agent: false }, (res) => {
      let got = 0
      res.on('data', (c) => { got += c.length })
      res.on('end', () => {
        const secs = (performance.now() - began) / 1000
        if (got !== bytes) return reject(new Error(`download got ${got} of ${bytes} bytes (status ${res.statusCode})`))
        resolve({ bytes: got, seconds: secs, mibps: got / MiB / secs })
      })
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error('download timed out')))
    req.on('error', reject)
    req.end()
  })
}

/** One POST of `bytes`, written with backpressure from a reused 64 KiB chunk. */
export function bulkUpload(target, bytes, timeoutMs = 600_000) {
  const chunk = Buffer.alloc(64 * 1024, 'c')
  return new Promise((resolve, reject) => {
    const began = performance.now()
    const opts = baseOptions(target, '/upload', 'POST')
    opts.headers = { ...opts.headers, 'content-type': 'application/octet-stream', 'content-length': String(bytes) }
    const req = mod(target).request({ ...opts, agent: false }, (res) => {
      let body = ''
      res.on('data', (c) => { body += c })
      res.on('end', () => {
        const secs = (performance.now() - began) / 1000
        let got = NaN
        try { got = JSON.parse(body).bytes } catch {}
        if (got !== bytes) return reject(new Error(`upload: upstream got ${got} of ${bytes} bytes (status ${res.statusCode})`))
        resolve({ bytes, seconds: secs, mibps: bytes / MiB / secs })
      })
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error('upload timed out')))
    req.on('error', reject)
    let left = bytes
    const pump = () => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left)
        left -= piece.length
        if (!req.write(piece)) return void req.once('drain', pump)
      }
      req.end()
    }
    pump()
  })
}

/**
 * `count` requests at once, each on its own connection, to an upstream that answers after
 * `delayMs`. Counts full 200 responses; the rest are grouped by error message.
 */
export async function concurrent(target, { count, delayMs = 1000, timeoutMs = 60_000 }) {
  const failures = new Map()
  let ok = 0
  const began = performance.now()
  const deadline = new AbortController()
  setMaxListeners(0, deadline.signal) // one signal aborts every request at the deadline
  const timer = setTimeout(() => deadline.abort(), timeoutMs)
  const one = () => new Promise((resolve) => {
    const fail = (why) => { failures.set(why, (failures.get(why) ?? 0) + 1); resolve() }
    const req = mod(target).request({ ...baseOptions(target, `/delay?ms=${delayMs}`), agent: false, signal: deadline.signal }, (res) => {
      let bytes = 0
      res.on('data', (c) => { bytes += c.length })
      res.on('end', () => {
        if (res.statusCode === 200 && bytes === 1024) ok++
        else return fail(`status ${res.statusCode}`)
        resolve()
      })
      res.on('error', (err) => fail(err.code ?? err.message))
    })
    req.on('error', (err) => fail(err.name === 'AbortError' ? 'not answered before the deadline' : (err.code ?? err.message)))
    req.end()
  })
  await Promise.all(Array.from({ length: count }, one))
  clearTimeout(timer)
  return { ok, count, seconds: (performance.now() - began) / 1000, failures: Object.fromEntries(failures) }
}

/**
 * A client that downloads `bytes` but reads only `rate` bytes per second for `durationMs`.
 * `atStart` runs 1 s in, `beforeEnd` runs while the download is still held open at the end
 * (both measure the tunnel's memory); then the client hangs up.
 */
export function slowRead(target, { bytes, rate, durationMs, atStart = async () => {}, beforeEnd = async () => {} }) {
  return new Promise((resolve, reject) => {
    const began = performance.now()
    let read = 0
    let status = 0
    let failed
    const req = mod(target).request({ ...baseOptions(target, `/bulk?bytes=${bytes}`), agent: false }, (res) => {
      status = res.statusCode
      res.on('data', (c) => {
        read += c.length
        const allowed = ((performance.now() - began) / 1000) * rate
        if (read > allowed && !res.isPaused()) {
          res.pause()
          setTimeout(() => res.resume(), Math.ceil(((read - allowed) / rate) * 1000))
        }
      })
      res.on('error', () => {})
    })
    req.on('error', (err) => { failed ??= err })
    req.end()
    setTimeout(() => void atStart(read), Math.min(1000, durationMs / 3))
    setTimeout(async () => {
      await beforeEnd(read)
      const seconds = (performance.now() - began) / 1000
      req.destroy()
      if (failed && read === 0) reject(failed)
      else resolve({ read, status, seconds })
    }, durationMs)
  })
}
