#!/usr/bin/env node
// CPU per MiB in the relay and the agent for one bulk transfer over HTTP and over HTTPS
// (scenario 3's load), in alternating rounds: what TLS at the relay adds per MiB.
//   node bench/tools/bulk-cpu.mjs [download|upload] [rounds] [MiB]
import { cpuOf, stopAll } from '../lib/children.mjs'
import { bulkDownload, bulkUpload } from '../lib/http-clients.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'
import { median } from '../lib/stats.mjs'

const [load = 'download', rounds = '3', mib = '256'] = process.argv.slice(2)
const upstream = await startUpstream()
const gw = await startGw(upstream.url)
if (!gw.available) throw new Error(gw.reason)
const paths = [
  { name: 'gw-http', target: { name: 'gw-http', protocol: 'http', port: gw.relay.httpPort, host: 'bench.localhost' }, runs: [] },
  { name: 'gw-https', target: { name: 'gw-https', protocol: 'https', port: gw.relay.httpsPort, host: 'bench.localhost', ca: gw.relay.caCertPem }, runs: [] },
]
try {
  for (const p of paths) await waitRoutable(p.target)
  const bytes = Number(mib) * 1024 * 1024
  for (let r = 0; r < Number(rounds); r++) {
    for (const p of paths) {
      const before = gw.procs.map((x) => cpuOf(x.pid))
      const res = await (load === 'upload' ? bulkUpload : bulkDownload)(p.target, bytes)
      const cpu = gw.procs.map((x, i) => (cpuOf(x.pid) - before[i]) / Number(mib))
      p.runs.push({ mibps: res.mibps, relay: cpu[0], agent: cpu[1] })
    }
  }
  console.table(paths.map((p) => ({
    path: p.name,
    'MiB/s': Math.round(median(p.runs.map((x) => x.mibps))),
    'relay µs/MiB': Math.round(median(p.runs.map((x) => x.relay))),
    'agent µs/MiB': Math.round(median(p.runs.map((x) => x.agent))),
  })))
} finally {
  await gw.close()
  await stopAll()
}
