// The gRPC load of scenario 11: one grpc-js channel (one HTTP/2 connection, as a gRPC
// client has) with `inFlight` unary calls of gwbench.Echo/Say at a time. Every reply is
// checked (status OK, the message sent back, `size` bytes of payload), so a path that
// loses trailers or bytes shows as errors, not as a figure.
import { echoService, grpc } from './grpc-proto.mjs'

let Echo

/** A client of gwbench.Echo for target {port, host, ca}: TLS with the CA, `host` as SNI and :authority. */
export function grpcClient(target) {
  Echo ??= echoService()
  return new Echo(`127.0.0.1:${target.port}`, grpc.credentials.createSsl(Buffer.from(target.ca)), {
    'grpc.ssl_target_name_override': target.host,
    'grpc.default_authority': target.host,
    'grpc.max_receive_message_length': -1,
  })
}

function say(client, message, size) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint()
    client.Say({ message, size }, (err, reply) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      if (err) resolve({ ok: false, error: `${err.code} ${err.details ?? err.message}` })
      else if (reply.message !== message || reply.payload.length !== size) resolve({ ok: false, error: `reply ${reply.message.slice(0, 20)}, ${reply.payload.length} bytes` })
      else resolve({ ok: true, ms })
    })
  })
}

/** One call; throws unless it is answered right. */
export async function grpcOnce(target, size = 1024) {
  const client = grpcClient(target)
  try {
    const r = await say(client, 'ready?', size)
    if (!r.ok) throw new Error(r.error)
  } finally {
    client.close()
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** Calls/s, p50/p99 (ms), right answers (ok) and errors for `duration` seconds. */
export async function grpcSaturate(target, { inFlight = 64, duration = 10, size = 1024 } = {}) {
  const client = grpcClient(target)
  try {
    await say(client, 'warm', size) // the connection's set-up is not a call's time
    const times = []
    let errors = 0
    let firstError
    const began = performance.now()
    const end = began + duration * 1000
    let n = 0
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        const r = await say(client, `m${n++}`, size)
        if (r.ok) times.push(r.ms)
        else {
          errors++
          firstError ??= r.error
        }
      }
    }))
    const seconds = (performance.now() - began) / 1000
    times.sort((a, b) => a - b)
    return { rps: times.length / seconds, ok: times.length, errors, firstError, p50: percentile(times, 50), p99: percentile(times, 99) }
  } finally {
    client.close()
  }
}
