#!/usr/bin/env node
// A/B of the gw path: the stock relay and agent against patched variants (from
// bench/experiments/make-variant.mjs), started side by side and measured in alternating
// rounds, so that load from other work on the machine hits both alike. Reports medians of
// req/s and of CPU µs per request in the relay and the agent (scenario 1's load), and
// syscalls per request for 1,000 sequential requests (strace -c), which noise cannot move.
//   node bench/tools/ab.mjs [--load small|download|upload] [--rounds 5] [--seconds 2] [--strace] [--policy] [--cli] <name>=<variant dir> …
// --cli runs each stack as users do, `gw relay` and `gw http --no-tui --log-format json` from
// the built CLI (or the variant's copy of it), with capture and the request log on
// (lib/gw-cli.mjs); `name=bare:<variant dir>` (or `name=bare:`) then puts the programmatic
// agent in front of a CLI relay instead, the harness's gw-bare row, and
// `name=<dir>,--no-inspect` (comma-separated) adds flags to that stack's `gw http`.
// --policy gives every agent scenario 8's 10-rule policy (fixtures/policy-10-rules.yml.tmpl) and
// sends its Basic credentials.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { cpuOf, stopAll } from '../lib/children.mjs'
import { bulkDownload, bulkUpload, saturate } from '../lib/http-clients.mjs'
import { startBareAgent, startCliRelay, startGwCli } from '../lib/gw-cli.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'
import { median } from '../lib/stats.mjs'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { load: { type: 'string', default: 'small' }, rounds: { type: 'string', default: '5' }, seconds: { type: 'string', default: '2' }, strace: { type: 'boolean', default: false }, policy: { type: 'boolean', default: false }, cli: { type: 'boolean', default: false } },
})
const variants = [{ name: 'stock', dir: undefined }, ...positionals.map((p) => {
  const [name, value = ''] = p.split('=')
  // With --cli, `name=<dir>,--no-inspect,…` gives that `gw http` extra flags.
  const [spec, ...extraArgs] = value.split(',')
  const bare = spec.startsWith('bare:')
  const dir = (bare ? spec.slice(5) : spec) || undefined
  return { name, dir, bare, extraArgs }
})]

const upstream = await startUpstream()
if (values.policy) {
  const file = join(tmpdir(), `gw-ab-policy-${process.pid}.yml`)
  writeFileSync(file, readFileSync(new URL('../fixtures/policy-10-rules.yml.tmpl', import.meta.url), 'utf8').replaceAll('__UPSTREAM__', upstream.url))
  process.env.GW_BENCH_POLICY = file
}
const extraHeaders = values.policy ? { authorization: `Basic ${Buffer.from('bench:bench-password').toString('base64')}` } : undefined
const stacks = []
for (const v of variants) {
  const name = `ab${stacks.length}`
  const gw = !values.cli ? await startGw(upstream.url, { name, variantDir: v.dir })
    : v.bare ? await startBare(name, v.dir) : await startGwCli(upstream.url, { name, variantDir: v.dir, extraArgs: v.extraArgs })
  if (!gw.available) throw new Error(`${v.name}: ${gw.reason}`)
  const target = { name: v.name, protocol: 'http', port: gw.relay.httpPort, host: `ab${stacks.length}.localhost`, ...(extraHeaders ? { extraHeaders } : {}) }
  await waitRoutable(target)
  stacks.push({ ...v, gw, target, runs: [] })
}
try {
  for (const s of stacks) await saturate(s.target, { connections: 64, duration: 1 }) // warm the JIT
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const s of stacks) {
      const before = s.gw.procs.map((p) => cpuOf(p.pid))
      if (values.load === 'small') {
        const r = await saturate(s.target, { connections: 64, duration: Number(values.seconds) })
        const cpu = s.gw.procs.map((p, i) => (cpuOf(p.pid) - before[i]) / r.ok)
        s.runs.push({ rps: r.rps, p50: r.p50, relay: cpu[0], agent: cpu[1] })
      } else {
        // Bulk: MiB/s of one 256 MiB transfer, and CPU µs per MiB.
        const r = await (values.load === 'download' ? bulkDownload : bulkUpload)(s.target, 256 * 1024 * 1024)
        const cpu = s.gw.procs.map((p, i) => (cpuOf(p.pid) - before[i]) / 256)
        s.runs.push({ rps: r.mibps, p50: NaN, relay: cpu[0], agent: cpu[1] })
      }
    }
  }
  // One request at a time: the latency a request pays at low load (scenario 2's regime),
  // where nothing batches and every hop costs its wake-ups.
  if (values.load === 'small') for (const s of stacks) s.sequential = await sequential(s)
  if (values.strace && spawnSync('strace', ['-V']).status === 0) {
    for (const s of stacks) s.syscalls = await syscallsPerRequest(s)
  }
  const unit = values.load === 'small' ? 'req' : 'MiB'
  const rows = stacks.map((s) => ({
    variant: s.name,
    [values.load === 'small' ? 'req/s' : 'MiB/s']: Math.round(median(s.runs.map((r) => r.rps))),
    ...(values.load === 'small' ? { 'p50 ms': +median(s.runs.map((r) => r.p50)).toFixed(2) } : {}),
    [`relay µs/${unit}`]: Math.round(median(s.runs.map((r) => r.relay))),
    [`agent µs/${unit}`]: Math.round(median(s.runs.map((r) => r.agent))),
    ...(s.sequential ?? {}),
    ...(s.syscalls ?? {}),
  }))
  console.table(rows)
  console.log(JSON.stringify({ rounds: Number(values.rounds), seconds: Number(values.seconds), stacks: stacks.map((s) => ({ name: s.name, dir: s.dir, runs: s.runs, sequential: s.sequential, syscalls: s.syscalls })) }))
} finally {
  for (const s of stacks) await s.gw.close()
  await stopAll()
}

/** A CLI relay and the programmatic agent in front of it; closing it closes both. */
async function startBare(name, variantDir) {
  const relay = await startCliRelay({ variantDir })
  const bare = await startBareAgent(upstream.url, relay, { name, variantDir })
  return { ...bare, close: async () => { await bare.close(); await relay.close() } }
}

/** strace -c on the relay and the agent while 1,000 requests go one after another on one connection. */
async function syscallsPerRequest(s) {
  const n = 1000
  const files = s.gw.procs.map((p) => join(tmpdir(), `gw-ab-${p.pid}.strace`))
  const tracers = s.gw.procs.map((p, i) => spawn('strace', ['-c', '-f', '-p', String(p.pid), '-o', files[i]], { stdio: 'ignore' }))
  await new Promise((r) => setTimeout(r, 500))
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  for (let i = 0; i < n; i++) {
    await new Promise((res, rej) => http.get({ host: '127.0.0.1', port: s.target.port, path: '/small', headers: { host: s.target.host, ...s.target.extraHeaders }, agent }, (r) => { r.resume(); r.on('end', res) }).on('error', rej))
  }
  agent.destroy()
  await Promise.all(tracers.map((t) => new Promise((r) => { t.once('exit', r); t.kill('SIGINT') })))
  const out = {}
  s.gw.procs.forEach((p, i) => {
    const text = readFileSync(files[i], 'utf8')
    rmSync(files[i], { force: true })
    const count = (re) => [...text.matchAll(new RegExp(`^\\s*[\\d.]+\\s+[\\d.]+\\s+\\d+\\s+(\\d+)\\s+(?:\\d+\\s+)?(${re})$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0)
    out[`${p.role} writes/req`] = +(count('write|writev|sendmsg|sendto') / n).toFixed(2)
    out[`${p.role} reads/req`] = +(count('read|readv|recvmsg|recvfrom') / n).toFixed(2)
  })
  return out
}

/** 2,000 requests one after another on one keep-alive connection: p50 latency and CPU per request. */
async function sequential(s) {
  const n = 2000
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const times = []
  const before = s.gw.procs.map((p) => cpuOf(p.pid))
  for (let i = 0; i < n; i++) {
    const began = performance.now()
    await new Promise((res, rej) => http.get({ host: '127.0.0.1', port: s.target.port, path: '/small', headers: { host: s.target.host, ...s.target.extraHeaders }, agent }, (r) => { r.resume(); r.on('end', res) }).on('error', rej))
    times.push(performance.now() - began)
  }
  agent.destroy()
  const cpu = s.gw.procs.map((p, i) => Math.round((cpuOf(p.pid) - before[i]) / n))
  return { 'seq p50 ms': +median(times).toFixed(2), 'seq relay µs/req': cpu[0], 'seq agent µs/req': cpu[1] }
}
