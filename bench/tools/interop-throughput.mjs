#!/usr/bin/env node
// One-stream throughput of the yamux layer alone, over loopback TCP, against the
// reference: hashicorp↔hashicorp (in one Go process), gw↔gw (in one Node process), and
// between them both ways (the Go peer of test/interop/go). No WebSocket, no HTTP.
//   node bench/tools/interop-throughput.mjs [MiB] [rounds]
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
import { Session } from '@gw/protocol'

const [mibArg = '256', roundsArg = '3'] = process.argv.slice(2)
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

async function goToGo() {
  const out = execFileSync(peer, ['-throughput', String(BYTES)], { encoding: 'utf8' })
  return JSON.parse(out).ms
}

async function gwToGw() {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection')
  const socket = net.connect(server.address().port, '127.0.0.1')
  await once(socket, 'connect')
  const [remote] = await accepted
  const a = new Session(socket, { client: true, keepAliveInterval: 0 })
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
  a.close(); b.close(); server.close()
  return ms
}

async function withGoPeer(fn) {
  const child = spawn(peer, ['-listen', '127.0.0.1:0'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const next = lines(child)
  const { port } = await next((l) => l.event === 'listening')
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const session = new Session(socket, { client: true, keepAliveInterval: 0 })
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
    stream.write('G')
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
for (const [name, run] of [
  ['hashicorp → hashicorp', goToGo],
  ['gw → gw', gwToGw],
  ['hashicorp → gw', () => withGoPeer((s) => goToGwOnce(s))],
  ['gw → hashicorp', () => withGoPeer((s, next) => gwToGoOnce(s, next))],
]) {
  const times = []
  for (let i = 0; i < ROUNDS; i++) times.push(await run())
  rows.push(`| ${name} | ${rate(median(times))} MiB/s | ${times.map((t) => rate(t)).join(', ')} |`)
}
console.log(`one stream, ${mibArg} MiB, loopback TCP, median of ${ROUNDS}`)
console.log('| path | median | rounds |\n|---|---|---|')
console.log(rows.join('\n'))
rmSync(dir, { recursive: true, force: true })
