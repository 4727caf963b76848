#!/usr/bin/env node
// Scenario 1's load on five paths side by side, in alternating rounds: direct, a minimal
// Node reverse proxy (procs/node-proxy.mjs: node:http server + undici, one process), two
// of them in a chain (two processes, each an HTTP server and an HTTP client, as a relay
// and an agent are), gw's relay and agent in one process (procs/gw-one-process.mjs), and
// gw-http as it runs. The proxy is the floor of any Node hop, the chain the floor of any
// two-process Node tunnel; the one-process gw tells the cost of gw's own work from the
// cost of the process boundary.
//   node bench/tools/proxy-floor.mjs [rounds] [seconds]
import { cpuOf, startProc, stopAll } from '../lib/children.mjs'
import { saturate } from '../lib/http-clients.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'
import { median } from '../lib/stats.mjs'

const [rounds = '5', seconds = '2'] = process.argv.slice(2)
const upstream = await startUpstream()
const proxy = await startProc('node-proxy.mjs', [upstream.url])
const chainTail = await startProc('node-proxy.mjs', [upstream.url])
const chainHead = await startProc('node-proxy.mjs', [`http://127.0.0.1:${chainTail.message.port}`])
const one = await startProc('gw-one-process.mjs', [upstream.url])
const gw = await startGw(upstream.url)
if (!gw.available) throw new Error(gw.reason)
const paths = [
  { name: 'direct', target: { protocol: 'http', port: upstream.port, host: `127.0.0.1:${upstream.port}` }, procs: [] },
  { name: 'node proxy', target: { protocol: 'http', port: proxy.message.port, host: `127.0.0.1:${proxy.message.port}` }, procs: [proxy.child.pid] },
  { name: 'two Node proxies', target: { protocol: 'http', port: chainHead.message.port, host: `127.0.0.1:${chainHead.message.port}` }, procs: [chainHead.child.pid, chainTail.child.pid] },
  { name: 'gw, one process', target: { protocol: 'http', port: one.message.port, host: 'one.localhost' }, procs: [one.child.pid] },
  { name: 'gw-http', target: { protocol: 'http', port: gw.relay.httpPort, host: 'bench.localhost' }, procs: gw.procs.map((p) => p.pid) },
]
try {
  for (const p of paths.slice(3)) await waitRoutable({ name: p.name, ...p.target })
  for (const p of paths) { p.runs = []; await saturate(p.target, { connections: 64, duration: 1 }) }
  for (let r = 0; r < Number(rounds); r++) {
    for (const p of paths) {
      const before = p.procs.map(cpuOf)
      const up = cpuOf(upstream.pid)
      const res = await saturate(p.target, { connections: 64, duration: Number(seconds) })
      p.runs.push({ rps: res.rps, cpu: p.procs.reduce((a, pid, i) => a + cpuOf(pid) - before[i], 0) / res.ok, up: (cpuOf(upstream.pid) - up) / res.ok })
    }
  }
  const direct = median(paths[0].runs.map((x) => x.rps))
  console.table(paths.map((p) => ({
    path: p.name,
    'req/s': Math.round(median(p.runs.map((x) => x.rps))),
    'of direct': `${Math.round((median(p.runs.map((x) => x.rps)) / direct) * 100)}%`,
    'hop CPU µs/req': p.procs.length ? Math.round(median(p.runs.map((x) => x.cpu))) : '–',
    'upstream µs/req': Math.round(median(p.runs.map((x) => x.up))),
  })))
} finally {
  await gw.close()
  await stopAll()
}
