#!/usr/bin/env node
// Scenario 4's load (10,000 requests at once, upstream answers after a delay) on a fresh
// relay and agent, with each process's memory read while all requests are in flight:
// peak RSS, then process.memoryUsage() before and after a full GC, so garbage and live
// memory per in-flight request can be told apart.
//   node bench/tools/in-flight-memory.mjs [count] [delayMs] [variantDir] [snapshotDir]
// With a snapshot directory, each process also writes a heap snapshot after the GC
// (summarise it with tools/heap-summary.mjs <file> 40 <count>); give it a long delay.
import { join } from 'node:path'
import { ask, memoryOf, resetPeak, sampleRss, stopAll } from '../lib/children.mjs'
import { concurrent } from '../lib/http-clients.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'

const [count = '10000', delayMs = '3000', variant, snapshotDir] = process.argv.slice(2)
const MiB = 1024 * 1024
const upstream = await startUpstream()
const gw = await startGw(upstream.url, { name: 'mem', variantDir: variant && variant !== '-' ? variant : undefined })
if (!gw.available) throw new Error(gw.reason)
const target = { name: 'gw-http', protocol: 'http', port: gw.relay.httpPort, host: 'mem.localhost' }
const heap = (p) => ask(p.child, { type: 'heap' }, 'heap')
try {
  await waitRoutable(target)
  const idle = await Promise.all(gw.procs.map(heap))
  gw.procs.forEach((p) => resetPeak(p.pid))
  const sampler = sampleRss(gw.procs.map((p) => p.pid), 100)
  const load = concurrent(target, { count: Number(count), delayMs: Number(delayMs), timeoutMs: 120_000 })
  // All requests are in flight well before the upstream answers.
  await new Promise((r) => setTimeout(r, Number(delayMs) * 0.8))
  const busy = await Promise.all(gw.procs.map(heap))
  for (const p of gw.procs) p.child.send({ type: 'gc' })
  await new Promise((r) => setTimeout(r, 150))
  const collected = await Promise.all(gw.procs.map(heap))
  if (snapshotDir) {
    for (const p of gw.procs) {
      const { file } = await ask(p.child, { type: 'heap-snapshot', file: join(snapshotDir, `in-flight-${p.role}.heapsnapshot`) }, 'heap-snapshot-written', 120_000)
      console.log(`heap snapshot: ${file}`)
    }
  }
  const r = await load
  const { max } = sampler.stop()
  const f = (b) => (b / MiB).toFixed(1)
  console.log(`${r.ok}/${r.count} in ${r.seconds.toFixed(1)} s`)
  console.table(gw.procs.map((p, i) => ({
    process: p.role,
    'peak RSS MiB': f(Math.max(max.get(p.pid), memoryOf(p.pid).peak)),
    'idle RSS': f(idle[i].rss),
    'busy RSS': f(busy[i].rss),
    'busy heap': f(busy[i].heapUsed),
    'after GC RSS': f(collected[i].rss),
    'after GC heap': f(collected[i].heapUsed),
    'after GC buffers': f(collected[i].arrayBuffers),
    'heap KiB/req': ((collected[i].heapUsed - idle[i].heapUsed) / 1024 / Number(count)).toFixed(1),
  })))
} finally {
  await gw.close()
  await stopAll()
}
