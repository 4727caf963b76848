// The HTTP/2 load of scenario 9, on node:http2 (autocannon speaks HTTP/1.1 only): a few
// connections, each with many streams in flight, as browsers and gRPC clients use one
// connection. Every response is checked (status 200 and the expected body length), and
// the protocol each connection negotiated is reported, so a path that fell back to
// HTTP/1.1 or lost bytes shows as an error, not as a figure.
import http2 from 'node:http2'

/**
 * @typedef {object} H2Target
 * @property {number} port          on 127.0.0.1
 * @property {string} host          `:authority`, and the TLS server name
 * @property {boolean} tls          h2 over TLS (ALPN) or h2c with prior knowledge
 * @property {string} [ca]
 */

function connect(target) {
  return new Promise((resolve, reject) => {
    const url = `${target.tls ? 'https' : 'http'}://127.0.0.1:${target.port}`
    // The CA is given so the TLS work is real; verification is off, as in lib/http-clients.mjs,
    // so the figures do not depend on each certificate's names.
    const session = http2.connect(url, target.tls ? { ca: target.ca, servername: target.host.split(':')[0], rejectUnauthorized: false } : {})
    const fail = (err) => { session.destroy(); reject(err) }
    session.once('error', fail)
    session.once('connect', () => {
      session.off('error', fail)
      session.on('error', () => {})
      resolve(session)
    })
  })
}

function once(session, target, path) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint()
    let status = 0
    let bytes = 0
    let req
    try {
      req = session.request({ ':method': 'GET', ':path': path, ':authority': target.host })
    } catch (err) {
      resolve({ ok: false, error: err.message })
      return
    }
    req.on('response', (h) => { status = Number(h[':status']) })
    req.on('data', (c) => { bytes += c.length })
    req.on('end', () => resolve({ ok: true, status, bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6 }))
    req.on('error', (err) => resolve({ ok: false, error: err.message }))
    req.end()
  })
}

/** One GET; resolves with {status, bytes, alpn}. */
export async function h2Get(target, path = '/small') {
  const session = await connect(target)
  try {
    const r = await once(session, target, path)
    if (!r.ok) throw new Error(r.error)
    return { status: r.status, bytes: r.bytes, alpn: session.alpnProtocol }
  } finally {
    session.close()
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/**
 * `connections` HTTP/2 connections with `streams` requests in flight on each, for
 * `duration` seconds. Returns req/s, p50/p99 (ms, every response's time), the
 * responses that were right (ok), the wrong ones and failures (errors, the first kept
 * in firstError), and the protocols the connections negotiated.
 */
export async function h2Saturate(target, { connections = 4, streams = 16, duration = 10, path = '/small', expectBytes = 1024 } = {}) {
  const sessions = await Promise.all(Array.from({ length: connections }, () => connect(target)))
  const times = []
  let errors = 0
  let firstError
  const began = performance.now()
  const end = began + duration * 1000
  await Promise.all(sessions.flatMap((session) => Array.from({ length: streams }, async () => {
    while (performance.now() < end && !session.destroyed) {
      const r = await once(session, target, path)
      if (r.ok && r.status === 200 && r.bytes === expectBytes) times.push(r.ms)
      else {
        errors++
        firstError ??= r.ok ? `status ${r.status}, ${r.bytes} bytes` : r.error
      }
    }
  })))
  const seconds = (performance.now() - began) / 1000
  const alpn = [...new Set(sessions.map((s) => s.alpnProtocol ?? 'h2c'))].join(',')
  await Promise.all(sessions.map((s) => new Promise((resolve) => { if (s.closed || s.destroyed) resolve(); else s.close(resolve) })))
  times.sort((a, b) => a - b)
  return { rps: times.length / seconds, ok: times.length, errors, firstError, p50: percentile(times, 50), p99: percentile(times, 99), alpn }
}
