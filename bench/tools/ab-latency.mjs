#!/usr/bin/env node
// Scenario 2's load (a fixed rate on keep-alive connections) on direct and on gw variants
// side by side, in alternating rounds: medians of p50 and p99 and of the latency added
// over direct in the same round. For changes that could move latency at low load.
//   node bench/tools/ab-latency.mjs [--rounds 5] [--seconds 2] [--rate 1000] [--floor] <name>=<variant dir> …
// --floor adds one Node reverse proxy and two in a chain (procs/node-proxy.mjs): the latency
// a Node hop adds with nothing of a tunnel in it.
// Every gw stack runs from a copy (bench/experiments/make-variant.mjs ""), so none has the
// first-stack handicap tools/ab.mjs shows for stock.
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startProc, stopAll } from '../lib/children.mjs'
import { fixedRate } from '../lib/http-clients.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'
import { median } from '../lib/stats.mjs'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: 'string', default: '5' }, seconds: { type: 'string', default: '2' }, rate: { type: 'string', default: '1000' }, floor: { type: 'boolean', default: false } } })
const upstream = await startUpstream()
const direct = { name: 'direct', target: { protocol: 'http', port: upstream.port, host: `127.0.0.1:${upstream.port}` }, runs: [] }
const stacks = [direct]
if (values.floor) {
  const one = await startProc('node-proxy.mjs', [upstream.url])
  const tail = await startProc('node-proxy.mjs', [upstream.url])
  const head = await startProc('node-proxy.mjs', [`http://127.0.0.1:${tail.message.port}`])
  for (const [name, port] of [['one Node proxy', one.message.port], ['two Node proxies', head.message.port]]) {
    stacks.push({ name, target: { protocol: 'http', port, host: `127.0.0.1:${port}` }, runs: [] })
  }
}
for (const [i, p] of positionals.entries()) {
  const [name, dir] = p.split('=')
  const gw = await startGw(upstream.url, { name: `lat${i}`, variantDir: dir })
  if (!gw.available) throw new Error(`${name}: ${gw.reason}`)
  const target = { name, protocol: 'http', port: gw.relay.httpPort, host: `lat${i}.localhost` }
  await waitRoutable(target)
  stacks.push({ name, gw, target, runs: [] })
}
const opts = { rate: Number(values.rate), duration: Number(values.seconds) }
try {
  for (const s of stacks) await fixedRate(s.target, { ...opts, duration: 1 })
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const s of stacks) s.runs.push(await fixedRate(s.target, opts))
  }
  console.table(stacks.map((s) => ({
    path: s.name,
    'p50 ms': +median(s.runs.map((x) => x.p50)).toFixed(3),
    'p99 ms': +median(s.runs.map((x) => x.p99)).toFixed(3),
    'added p50 ms': +median(s.runs.map((x, i) => x.p50 - direct.runs[i].p50)).toFixed(3),
    'added p99 ms': +median(s.runs.map((x, i) => x.p99 - direct.runs[i].p99)).toFixed(3),
  })))
} finally {
  for (const s of stacks) await s.gw?.close()
  await stopAll()
}
