#!/usr/bin/env node
// Reproduces a stall seen in scenario 2: a fresh gw path hit at once with 1,000 req/s over
// a 32-socket keep-alive pool (LIFO, as scenario 2's client) sometimes settles at ~500 ms
// of latency for seconds, with the relay and agent at ~35% CPU; other runs recover within
// 250 ms. Direct never does. Prints p50/max per 250 ms of send time.
// With `burst`, 16 requests go at once first, as scenario 2's pool warm-up does.
//   node bench/tools/repro-cold-stall.mjs [gw|direct] [runs] [burst]
import http from 'node:http'
import { stopAll } from '../lib/children.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'

const [which = 'gw', runsArg = '3', burst] = process.argv.slice(2)
for (let run = 0; run < Number(runsArg); run++) {
  const upstream = await startUpstream()
  const gw = which === 'gw' ? await startGw(upstream.url) : undefined
  const port = gw ? gw.relay.httpPort : upstream.port
  await waitRoutable({ name: which, protocol: 'http', port, host: 'bench.localhost' })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32, scheduling: 'lifo' })
  if (burst) {
    await Promise.all(Array.from({ length: 16 }, () => new Promise((res) => {
      http.get({ host: '127.0.0.1', port, path: '/small', headers: { host: 'bench.localhost' }, agent }, (r) => { r.resume(); r.on('end', res) })
    })))
  }
  const rows = []
  const began = performance.now()
  let sent = 0
  const one = () => {
    const s = performance.now()
    http.get({ host: '127.0.0.1', port, path: '/small', headers: { host: 'bench.localhost' }, agent }, (r) => {
      r.resume()
      r.on('end', () => rows.push([s - began, performance.now() - s]))
    })
  }
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(3000, Math.floor(performance.now() - began))
      while (sent < due) { one(); sent++ }
      if (sent >= 3000) return resolve()
      setTimeout(tick, 1)
    }
    tick()
  })
  while (rows.length < 3000) await new Promise((r) => setTimeout(r, 50))
  agent.destroy()
  const buckets = new Map()
  for (const [t, l] of rows) {
    const b = Math.floor(t / 250)
    if (!buckets.has(b)) buckets.set(b, [])
    buckets.get(b).push(l)
  }
  const line = [...buckets].sort((a, b) => a[0] - b[0]).slice(0, 12).map(([, ls]) => { ls.sort((a, b) => a - b); return ls[ls.length >> 1].toFixed(1) })
  console.log(`${which} run ${run + 1}: p50 ms per 250 ms: ${line.join(' ')}`)
  await gw?.close()
  await stopAll()
}
