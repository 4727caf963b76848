#!/usr/bin/env node
// Soak: mixed traffic through a real relay and agent (each in its own process) for
// --minutes N, with a reading of each process's RSS, V8 heap and active handles every
// minute. It fails when memory or handles grow beyond the bounds below, when streams
// stay open once the traffic stops, or when a request that was not aborted on purpose
// fails.
//
//   npm run soak -- --minutes 60 [--concurrency 8] [--out FILE]
//
// Bounds (each process, last reading against the reading after the first minute, all
// after a full GC): RSS +48 MiB, heap used +16 MiB, active handles +32 once traffic
// stopped. The first minute is the baseline so that JIT warm-up and the pools' first
// growth do not count as a leak.
import { request as httpRequest, Agent as HttpAgent } from 'node:http'
import { writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { ask, benchDir, collectGarbage, memoryOf, startProc, stopAll } from './lib/children.mjs'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '8' },
    out: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
})
const minutes = Number(values.minutes)
const concurrency = Number(values.concurrency)
if (!(minutes > 0) || !(concurrency > 0)) {
  console.error(`--minutes and --concurrency must be positive numbers, got ${values.minutes} and ${values.concurrency}`)
  process.exit(2)
}
const BOUND = { rss: 48 * 1024 * 1024, heap: 16 * 1024 * 1024, handles: 32 }
const MiB = 1024 * 1024
const log = (line) => { if (!values.quiet) console.log(line) }

const upstream = await startProc('soak-upstream.mjs')
const relay = await startProc('relay.mjs')
if (relay.message.type !== 'ready') throw new Error(`relay unavailable: ${relay.message.reason}`)
const agent = await startProc('agents.mjs', [relay.message.httpUrl, `http://127.0.0.1:${upstream.message.port}`, 'soak', '1'])
if (agent.message.type !== 'ready') throw new Error(`agent unavailable: ${agent.message.reason}`)
const port = relay.message.httpPort
const HOST = 'soak.localhost'
const procs = { relay, agent }

const counts = { small: 0, bulk: 0, upload: 0, sse: 0, ws: 0, abort: 0, failed: 0 }
const failures = []
const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: concurrency * 2 })

function call(method, path, { body, abortAfterBytes, abortAfterMs } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: keepAlive, headers: { host: HOST, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      let bytes = 0
      res.on('data', (c) => {
        bytes += c.length
        if (abortAfterBytes !== undefined && bytes >= abortAfterBytes) {
          req.destroy()
          resolve({ status: res.statusCode, bytes, aborted: true })
        }
      })
      res.on('end', () => resolve({ status: res.statusCode, bytes }))
      res.on('error', reject)
    })
    req.on('error', (err) => (abortAfterMs !== undefined || abortAfterBytes !== undefined ? resolve({ aborted: true }) : reject(err)))
    if (abortAfterMs !== undefined) setTimeout(() => { req.destroy(); resolve({ aborted: true }) }, abortAfterMs)
    req.end(body)
  })
}

function expect(ok, what) {
  if (!ok) throw new Error(what)
}

const UPLOAD = Buffer.alloc(MiB, 'u')
const ops = [
  [55, 'small', async () => { const r = await call('GET', '/small'); expect(r.status === 200 && r.bytes === 1024, `small: ${r.status} ${r.bytes} B`) }],
  [6, 'bulk', async () => { const r = await call('GET', `/bulk?bytes=${4 * MiB}`); expect(r.status === 200 && r.bytes === 4 * MiB, `bulk: ${r.status} ${r.bytes} B`) }],
  [6, 'upload', async () => { const r = await call('POST', '/upload', { body: UPLOAD }); expect(r.status === 200, `upload: ${r.status}`) }],
  [6, 'sse', async () => { const r = await call('GET', '/sse?events=20'); expect(r.status === 200 && r.bytes > 0, `sse: ${r.status} ${r.bytes} B`) }],
  [6, 'ws', () => websocketRound()],
  [11, 'abort', async () => { await call('GET', '/slow', { abortAfterMs: 30 + Math.floor(Math.random() * 100) }) }],
  [10, 'abort', async () => { await call('GET', `/bulk?bytes=${64 * MiB}`, { abortAfterBytes: 256 * 1024 }) }],
]
const totalWeight = ops.reduce((n, [w]) => n + w, 0)
function pick() {
  let r = Math.random() * totalWeight
  for (const op of ops) if ((r -= op[0]) < 0) return op
  return ops[0]
}

function websocketRound() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { host: HOST }, perMessageDeflate: false })
    let got = 0
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('ws: no echo within 20 s')) }, 20_000)
    ws.on('open', () => ws.send('ping 0'))
    ws.on('message', () => {
      if (++got === 20) return ws.close()
      ws.send(`ping ${got}`)
    })
    ws.on('close', () => { clearTimeout(timer); got === 20 ? resolve() : reject(new Error(`ws: closed after ${got} echoes`)) })
    ws.on('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

let running = true
async function worker() {
  while (running) {
    const [, kind, run] = pick()
    try {
      await run()
      counts[kind]++
    } catch (err) {
      counts.failed++
      if (failures.length < 20) failures.push(`${kind}: ${err.message}`)
    }
  }
}

async function reading() {
  await collectGarbage([relay.child, agent.child], 300)
  const row = { minute: 0, requests: { ...counts } }
  for (const [name, p] of Object.entries(procs)) {
    const heap = await ask(p.child, { type: 'heap' }, 'heap')
    const handles = await ask(p.child, { type: 'handles' }, 'handles')
    const streams = await ask(p.child, { type: 'streams' }, 'streams')
    row[name] = { rss: memoryOf(p.pid).rss, heapUsed: heap?.heapUsed ?? NaN, handles: handles?.count ?? NaN, streams: streams?.open ?? NaN }
  }
  return row
}

const fmt = (b) => `${(b / MiB).toFixed(1)} MiB`
const line = (r) => `min ${String(r.minute).padStart(3)}  ` + Object.keys(procs).map((n) =>
  `${n}: rss ${fmt(r[n].rss)} heap ${fmt(r[n].heapUsed)} handles ${r[n].handles} streams ${r[n].streams}`).join('  |  ') +
  `  |  ok ${Object.entries(r.requests).filter(([k]) => k !== 'failed').reduce((n, [, v]) => n + v, 0)} failed ${r.requests.failed}`

const started = Date.now()
const workers = Array.from({ length: concurrency }, worker)
const rows = [{ ...(await reading()), minute: 0 }]
log(line(rows[0]))
const total = Math.max(1, Math.round(minutes * 60_000))
for (let m = 1; Date.now() - started < total; m++) {
  await new Promise((r) => setTimeout(r, Math.min(60_000, total - (Date.now() - started))))
  const row = { ...(await reading()), minute: Number(((Date.now() - started) / 60_000).toFixed(2)) }
  rows.push(row)
  log(line(row))
}
running = false
await Promise.all(workers)
keepAlive.destroy()
// Give closes and resets a moment to cross both processes, then the quiet reading.
await new Promise((r) => setTimeout(r, 3000))
const quiet = { ...(await reading()), minute: 'quiet' }
log(line(quiet))

const base = rows.length > 1 ? rows[1] : rows[0]
const last = rows[rows.length - 1]
const problems = []
for (const name of Object.keys(procs)) {
  if (last[name].rss - base[name].rss > BOUND.rss) problems.push(`${name} RSS grew ${fmt(last[name].rss - base[name].rss)} (bound ${fmt(BOUND.rss)})`)
  if (last[name].heapUsed - base[name].heapUsed > BOUND.heap) problems.push(`${name} heap grew ${fmt(last[name].heapUsed - base[name].heapUsed)} (bound ${fmt(BOUND.heap)})`)
  if (quiet[name].handles - rows[0][name].handles > BOUND.handles) problems.push(`${name} handles: ${quiet[name].handles} after traffic against ${rows[0][name].handles} at the start`)
  if (quiet[name].streams !== 0) problems.push(`${name} still has ${quiet[name].streams} open streams after traffic stopped`)
}
if (counts.failed > 0) problems.push(`${counts.failed} requests failed: ${failures.slice(0, 5).join('; ')}`)

const result = { minutes, concurrency, bound: BOUND, counts, rows, quiet, problems, failures }
const out = values.out ?? join(benchDir, 'results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
mkdirSync(join(out, '..'), { recursive: true })
writeFileSync(out, JSON.stringify(result, null, 2))
log(`wrote ${out}`)
await stopAll()
await upstream.child.kill()
if (problems.length > 0) {
  console.error(`soak FAILED:\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
log(`soak passed: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`)
process.exit(0)
