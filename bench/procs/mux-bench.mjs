// Scenario 7 in a fresh process per implementation: one stream over a loopback ws pair
// (WebSocketServer and WebSocket in this process), `bytes` sent from client to server.
// argv: <raw|yamux-js|gw> <bytes> <maxMs>
// The run stops at `bytes` or `maxMs`, whichever comes first, and MiB/s is what arrived
// over the time taken: yamux-js polls a closed send window every 100 ms, so sending a
// fixed size through it takes minutes.
import { once } from 'node:events'
import { createWebSocketStream, WebSocket, WebSocketServer } from 'ws'

const [impl, bytesArg, maxMsArg] = process.argv.slice(2)
const total = Number(bytesArg)
const maxMs = Number(maxMsArg ?? 60_000)
let timeUp = false
let got = 0

/** Resolves when `total` bytes arrived or time is up. */
function arrival() {
  let resolve
  const promise = new Promise((r) => { resolve = r })
  const timer = setTimeout(() => { timeUp = true; resolve() }, maxMs)
  return { promise, add(n) { got += n; if (got >= total) { clearTimeout(timer); resolve() } } }
}
const CHUNK = Buffer.alloc(64 * 1024, 'm')

async function wsPair() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 0 })
  await once(wss, 'listening')
  const accepted = once(wss, 'connection')
  const client = new WebSocket(`ws://127.0.0.1:${wss.address().port}`, { perMessageDeflate: false, maxPayload: 0 })
  await once(client, 'open')
  const [server] = await accepted
  return { client, server, close: () => { client.terminate(); server.terminate(); wss.close() } }
}

/** Write `total` bytes into a Writable with backpressure; resolves when all are handed over. */
async function pump(writable) {
  let left = total
  while (left > 0 && !timeUp) {
    const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left)
    left -= piece.length
    if (!writable.write(piece)) {
      await Promise.race([once(writable, 'drain'), new Promise((r) => { const t = setInterval(() => { if (timeUp) { clearInterval(t); r() } }, 50) })])
    }
  }
  if (!timeUp) writable.end()
}

/** Raw ws: binary messages straight on the socket, at most 16 unacknowledged sends. */
async function runRaw() {
  const { client, server, close } = await wsPair()
  const done = arrival()
  server.on('message', (d) => done.add(d.length))
  const began = performance.now()
  let left = total
  let inflight = 0
  await new Promise((resolve) => {
    const send = () => {
      while (left > 0 && inflight < 16 && !timeUp) {
        const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left)
        left -= piece.length
        inflight++
        client.send(piece, { binary: true }, () => { inflight--; send() })
      }
      if (left === 0 || timeUp) resolve()
    }
    send()
  })
  await done.promise
  const secs = (performance.now() - began) / 1000
  close()
  return secs
}

async function runYamuxJs() {
  const { Client, Server } = await import('yamux-js')
  const { client, server, close } = await wsPair()
  const done = arrival()
  const srv = new Server((stream) => {
    stream.on('data', (d) => done.add(d.length))
  }, { enableKeepAlive: false, logger: () => {} })
  const cli = new Client({ enableKeepAlive: false, logger: () => {} })
  const a = createWebSocketStream(client)
  const b = createWebSocketStream(server)
  cli.pipe(a).pipe(cli)
  srv.pipe(b).pipe(srv)
  const began = performance.now()
  const stream = cli.open()
  await pump(stream)
  await done.promise
  const secs = (performance.now() - began) / 1000
  close()
  return secs
}

/**
 * gw's own multiplexer. The Session API comes from @gw/protocol's mux; this adapter is the
 * one place that knows its shape, so a change there touches only this function.
 */
async function runGw() {
  const mux = await import('@gw/protocol').catch(() => undefined)
  if (typeof mux?.Session !== 'function') throw new Error('unavailable: @gw/protocol exports no Session yet')
  const { client, server, close } = await wsPair()
  const a = new mux.Session(mux.createWebSocketTransport(client), { client: true })
  const b = new mux.Session(mux.createWebSocketTransport(server), { client: false })
  const done = arrival()
  b.on('stream', (stream) => stream.on('data', (d) => done.add(d.length)).on('error', () => {}))
  const began = performance.now()
  const stream = a.open()
  stream.on('error', () => {})
  await pump(stream)
  await done.promise
  const secs = (performance.now() - began) / 1000
  a.close?.()
  b.close?.()
  close()
  return secs
}

try {
  const run = { raw: runRaw, 'yamux-js': runYamuxJs, gw: runGw }[impl]
  if (!run) throw new Error(`unknown implementation ${impl}`)
  const seconds = await run()
  process.send?.({ type: 'ready', seconds, bytes: got, mibps: got / (1024 * 1024) / seconds })
} catch (err) {
  process.send?.({ type: 'unavailable', reason: String(err?.message ?? err).replace(/^unavailable: /, '') })
}
setTimeout(() => process.exit(0), 50)
