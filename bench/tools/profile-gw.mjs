#!/usr/bin/env node
// CPU-profile the relay and the agent under one load, in isolation from the harness:
//   node bench/tools/profile-gw.mjs <small|sequential|download|upload> [outDir] [variantDir]
// small: autocannon 64 connections for 5 s; sequential: 5,000 requests one after another on
// one keep-alive connection (scenario 2's regime); download/upload: one 512 MiB transfer.
// Writes <outDir>/<load>-relay.cpuprofile and -agent.cpuprofile and prints their summaries.
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { ask, cpuOf, stopAll } from '../lib/children.mjs'
import { bulkDownload, bulkUpload, saturate } from '../lib/http-clients.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'

const [load = 'small', outDir = join(process.cwd(), 'bench/results/profiles'), variant] = process.argv.slice(2)
mkdirSync(outDir, { recursive: true })
const upstream = await startUpstream()
const gw = await startGw(upstream.url, { variantDir: variant })
if (!gw.available) throw new Error(gw.reason)
const target = { name: 'gw-http', protocol: 'http', port: gw.relay.httpPort, host: 'bench.localhost' }
try {
  await waitRoutable(target)
  await saturate(target, { connections: 16, duration: 1 }) // warm the JIT
  await Promise.all(gw.procs.map((p) => ask(p.child, { type: 'profile-start' }, 'profile-started')))
  const before = gw.procs.map((p) => cpuOf(p.pid))
  const began = performance.now()
  let summary
  if (load === 'small') {
    const r = await saturate(target, { connections: 64, duration: 5 })
    summary = `${Math.round(r.rps)} req/s`
  } else if (load === 'sequential') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const n = 5000
    for (let i = 0; i < n; i++) {
      await new Promise((res, rej) => http.get({ host: '127.0.0.1', port: target.port, path: '/small', headers: { host: target.host }, agent }, (r) => { r.resume(); r.on('end', res) }).on('error', rej))
    }
    agent.destroy()
    summary = `${n} sequential requests, ${(((performance.now() - began) / n) * 1000).toFixed(0)} µs each`
  } else {
    const r = await (load === 'download' ? bulkDownload : bulkUpload)(target, 512 * 1024 * 1024)
    summary = `${r.mibps.toFixed(0)} MiB/s`
  }
  const secs = (performance.now() - began) / 1000
  const cpu = gw.procs.map((p, i) => `${p.role} ${Math.round(((cpuOf(p.pid) - before[i]) / 1e6 / secs) * 100)}% CPU`)
  const files = await Promise.all(gw.procs.map((p) => ask(p.child, { type: 'profile-stop', file: join(outDir, `${load}-${p.role}.cpuprofile`) }, 'profile-written', 30_000)))
  console.log(`${load}: ${summary}; ${cpu.join(', ')}`)
  for (const f of files) console.log(execFileSync(process.execPath, [new URL('./profile-summary.mjs', import.meta.url).pathname, f.file, '20'], { encoding: 'utf8' }))
} finally {
  await gw.close()
  await stopAll()
}
