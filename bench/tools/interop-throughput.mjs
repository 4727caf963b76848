#!/usr/bin/env node
// One-stream throughput of the yamux layer alone against the reference, over loopback TCP
// and over one loopback WebSocket (gw's link): hashicorp↔hashicorp (in one Go process,
// gorilla/websocket for ws), gw↔gw (in one Node process, ws + createWebSocketTransport
// with the relay's and agent's options), and between them both ways (the Go peer of
// test/interop/go). No HTTP.
//   node bench/tools/interop-throughput.mjs [MiB] [rounds] [tcp|ws|both]
// Needs `go` (scripts/setup-system.sh); builds the vendored peer offline. Prints MiB/s,
// the median of the rounds.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { WebSocket, WebSocketServer } from 'ws'
import { createWebSocketTransport, LINK_DEFAULTS, Session } from '@gw/protocol'

const [mibArg = '256', roundsArg = '3', transportArg = 'both'] = process.argv.slice(2)
const TRANSPORTS = transportArg === 'both' ? ['tcp', 'ws'] : [transportArg]
const BYTES = Number(mibArg) * 1024 * 1024
const ROUNDS = Number(roundsArg)
const CHUNK = Buffer.alloc(256 * 1024, 7)

const dir = mkdtempSync(join(tmpdir(), 'gw-interop-bench-'))
const peer = join(dir, 'peer')
execFileSync('go', ['build', '-o', peer, '.'], {
  cwd: fileURLToPath(new URL('../../test/interop/go/', import.meta.url)),
  env: { ...process.env, GOFLAGS: '-mod=vendor', GOPROXY: 'off', GOCACHE: join(dir, 'cache'), GOPATH: join(dir, 'gopath'), GOTOOLCHAIN: 'local' },
  stdio: 'inherit',
})

function lines(child) {
  const queue = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (l) => {
    const v = JSON.parse(l)
    const w = waiters.findIndex((x) => x.match(v))
    if (w !== -1) waiters.splice(w, 1)[0].resolve(v)
    else queue.push(v)
  })
  return (match) => {
    const at = queue.findIndex(match)
    if (at !== -1) return Promise.resolve(queue.splice(at, 1)[0])
    return new Promise((resolve) => waiters.push({ match, resolve }))
  }
}

/** Write BYTES into a stream in 256 KiB writes, honouring backpressure, then end it. */
function pump(stream) {
  let sent = 0
  const more = () => {
    while (sent < BYTES) {
      const n = Math.min(CHUNK.length, BYTES - sent)
      sent += n
      if (!stream.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return stream.once('drain', more)
    }
    stream.end()
  }
  more()
}

async function goToGo(transport) {
  const out = execFileSync(peer, ['-throughput', String(BYTES), ...(transport === 'ws' ? ['-ws'] : [])], { encoding: 'utf8' })
  return JSON.parse(out).ms
}

/** The agent's options (packages/cli/src/agent/relay-connection.ts): its zero mask on loopback. */
const AGENT_WS = { perMessageDeflate: false, generateMask: () => {}, maxPayload: LINK_DEFAULTS.wsMaxPayload }

/** Two connected transports: [client side, server side, close]. */
async function pair(transport) {
  if (transport === 'ws') {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: LINK_DEFAULTS.wsMaxPayload })
    await once(wss, 'listening')
    const accepted = once(wss, 'connection')
    const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}/_gw/agent`, AGENT_WS)
    await once(ws, 'open')
    const [remote] = await accepted
    return [createWebSocketTransport(ws), createWebSocketTransport(remote), () => wss.close()]
  }
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection')
  const socket = net.connect(server.address().port, '127.0.0.1')
  await once(socket, 'connect')
  const [remote] = await accepted
  return [socket, remote, () => server.close()]
}

async function gwToGw(transport) {
  const [local, remote, closeServer] = await pair(transport)
  const a = new Session(local, { client: true, keepAliveInterval: 0 })
  const b = new Session(remote, { client: false, keepAliveInterval: 0 })
  const t0 = performance.now()
  const got = new Promise((resolve) => b.once('stream', (s) => {
    s.on('error', () => {})
    let n = 0
    s.on('data', (c) => (n += c.length))
    s.on('end', () => resolve(n))
  }))
  const out = a.open()
  out.on('error', () => {})
  pump(out)
  if ((await got) !== BYTES) throw new Error('short transfer')
  const ms = performance.now() - t0
  a.close(); b.close(); closeServer()
  return ms
}

async function withGoPeer(transport, fn) {
  const child = spawn(peer, [...(transport === 'ws' ? ['-ws'] : []), '-listen', '127.0.0.1:0'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const next = lines(child)
  const { port } = await next((l) => l.event === 'listening')
  let transportSide
  if (transport === 'ws') {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/_gw/agent`, AGENT_WS)
    await once(ws, 'open')
    transportSide = createWebSocketTransport(ws)
  } else {
    transportSide = net.connect(port, '127.0.0.1')
    await once(transportSide, 'connect')
  }
  const session = new Session(transportSide, { client: true, keepAliveInterval: 0 })
  await next((l) => l.event === 'ready')
  try {
    return await fn(session, next)
  } finally {
    session.close()
    child.stdin.end()
    await once(child, 'exit')
  }
}

function goToGwOnce(session) {
  const stream = session.open()
  stream.on('error', () => {})
  const size = Buffer.alloc(8)
  size.writeBigUInt64BE(BigInt(BYTES))
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    let n = 0
    stream.on('data', (c) => (n += c.length))
    stream.on('end', () => (n === BYTES ? resolve(performance.now() - t0) : reject(new Error(`${n} bytes`))))
    stream.write('Z')
    stream.end(size)
  })
}

async function gwToGoOnce(session, next) {
  const stream = session.open()
  stream.on('error', () => {})
  const t0 = performance.now()
  const done = next((l) => l.event === 'W')
  stream.write('W')
  pump(stream)
  const r = await done
  if (r.bytes !== BYTES) throw new Error(`${r.bytes} bytes`)
  return performance.now() - t0
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const rate = (ms) => (BYTES / 1024 / 1024 / (ms / 1000)).toFixed(0)
const rows = []
for (const transport of TRANSPORTS) {
  for (const [name, run] of [
    ['hashicorp → hashicorp', () => goToGo(transport)],
    ['gw → gw', () => gwToGw(transport)],
    ['hashicorp → gw', () => withGoPeer(transport, (s) => goToGwOnce(s))],
    ['gw → hashicorp', () => withGoPeer(transport, (s, next) => gwToGoOnce(s, next))],
  ]) {
    const times = []
    for (let i = 0; i < ROUNDS; i++) times.push(await run())
    rows.push(`| ${transport === 'ws' ? 'WebSocket' : 'TCP'} | ${name} | ${rate(median(times))} MiB/s | ${times.map((t) => rate(t)).join(', ')} |`)
  }
}
console.log(`one stream, ${mibArg} MiB, loopback, median of ${ROUNDS}`)
console.log('| link | path | median | rounds |\n|---|---|---|---|')
console.log(rows.join('\n'))
rmSync(dir, { recursive: true, force: true })
