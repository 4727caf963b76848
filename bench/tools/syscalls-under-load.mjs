#!/usr/bin/env node
// Read and write syscalls per request in the relay and the agent at saturation (scenario 1's
// load), from /proc/<pid>/io's syscr/syscw: no tracer, so the batching is what it is under load.
//   node bench/tools/syscalls-under-load.mjs [seconds] [variantDir]
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cpuOf, stopAll } from '../lib/children.mjs'
import { saturate } from '../lib/http-clients.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'

const [seconds = '3', variant] = process.argv.slice(2)
const io = (pid) => {
  const text = readFileSync(`/proc/${pid}/io`, 'utf8')
  return { r: Number(/syscr: (\d+)/.exec(text)[1]), w: Number(/syscw: (\d+)/.exec(text)[1]) }
}
const upstream = await startUpstream()
const gw = await startGw(upstream.url, { variantDir: variant })
if (!gw.available) throw new Error(gw.reason)
const target = { name: 'gw-http', protocol: 'http', port: gw.relay.httpPort, host: 'bench.localhost' }
try {
  await waitRoutable(target)
  await saturate(target, { connections: 64, duration: 1 })
  const procs = [...gw.procs, { role: 'upstream', pid: upstream.pid }].filter((p) => p.pid)
  const before = procs.map((p) => ({ io: io(p.pid), cpu: cpuOf(p.pid) }))
  const r = await saturate(target, { connections: 64, duration: Number(seconds) })
  const rows = procs.map((p, i) => {
    const after = io(p.pid)
    return {
      process: p.role,
      'reads/req': +((after.r - before[i].io.r) / r.ok).toFixed(2),
      'writes/req': +((after.w - before[i].io.w) / r.ok).toFixed(2),
      'CPU µs/req': Math.round((cpuOf(p.pid) - before[i].cpu) / r.ok),
    }
  })
  console.log(`${Math.round(r.rps)} req/s`)
  console.table(rows)
} finally {
  await gw.close()
  await stopAll()
}
