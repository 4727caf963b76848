#!/usr/bin/env node
// CPU-profile `gw http` (the CLI agent) under scenario 1's load, with or without the
// 10-rule policy of scenario 8, or with the TUI:
//   node bench/tools/profile-cli-agent.mjs <baseline|policy|tui|default> [outDir]
// The profile covers the agent's whole life (node --cpu-prof); 6 s of load dominate it.
// `default` is the harness's gw-http row (lib/gw-cli.mjs: `gw relay` + `gw http --no-tui
// --log-format json`, capture and request log on, the log to a file), profiled through the
// inspector during the load only, relay and agent both.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ask, cpuOf, stopAll, stopChild } from '../lib/children.mjs'
import { startGwCli } from '../lib/gw-cli.mjs'
import { startCliAgent } from '../lib/cli-agent.mjs'
import { saturate } from '../lib/http-clients.mjs'
import { startGw, startUpstream, waitRoutable } from '../lib/paths.mjs'

const [variant = 'policy', outDir = join(process.cwd(), 'bench/results/profiles')] = process.argv.slice(2)
const profDir = join(outDir, `cli-${variant}-${Date.now()}`)
mkdirSync(profDir, { recursive: true })
const upstream = await startUpstream()
if (variant === 'default') {
  const gw = await startGwCli(upstream.url, { name: 'prof' })
  if (!gw.available) throw new Error(gw.reason)
  const target = { name: variant, protocol: 'http', port: gw.relay.httpPort, host: 'prof.localhost' }
  try {
    await waitRoutable(target)
    await saturate(target, { connections: 64, duration: 2 }) // warm the JIT first
    await Promise.all(gw.procs.map((p) => ask(p.child, { type: 'profile-start' }, 'profile-started')))
    const before = gw.procs.map((p) => cpuOf(p.pid))
    const r = await saturate(target, { connections: 64, duration: 6 })
    const cpu = gw.procs.map((p, i) => Math.round((cpuOf(p.pid) - before[i]) / r.ok))
    await Promise.all(gw.procs.map((p) => ask(p.child, { type: 'profile-stop', file: join(profDir, `${p.role}.cpuprofile`) }, 'profile-written', 30_000)))
    console.log(`${variant}: ${Math.round(r.rps)} req/s; CPU µs/req ${gw.procs.map((p, i) => `${p.role} ${cpu[i]}`).join(', ')}`)
  } finally {
    await gw.close()
    await stopAll()
  }
  for (const f of readdirSync(profDir)) console.log(`${f}\n${execFileSync(process.execPath, [new URL('./profile-summary.mjs', import.meta.url).pathname, join(profDir, f), '30'], { encoding: 'utf8' })}`)
  process.exit(0)
}
const gw = await startGw(upstream.url)
const dir = mkdtempSync(join(tmpdir(), 'gw-bench-prof-'))
const policyFile = join(dir, 'policy.yml')
writeFileSync(policyFile, readFileSync(new URL('../fixtures/policy-10-rules.yml.tmpl', import.meta.url), 'utf8').replaceAll('__UPSTREAM__', upstream.url))
const agent = await startCliAgent({
  upstreamUrl: upstream.url,
  relayUrl: `http://127.0.0.1:${gw.relay.httpPort}`,
  name: 'prof',
  extraArgs: variant === 'policy' ? ['--policy-file', policyFile, '--log-level', 'warn'] : variant === 'tui' ? [] : ['--log-level', 'warn'],
  tty: variant === 'tui',
  nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
})
const target = { name: variant, protocol: 'http', port: gw.relay.httpPort, host: 'prof.localhost', extraHeaders: { authorization: `Basic ${Buffer.from('bench:bench-password').toString('base64')}` } }
try {
  await waitRoutable(target)
  const r = await saturate(target, { connections: 64, duration: 6 })
  console.log(`${variant}: ${Math.round(r.rps)} req/s`)
} finally {
  // SIGINT lets node write the profile (script(1) passes it on to the agent).
  agent.child.kill('SIGINT')
  await new Promise((r) => setTimeout(r, 3000))
  await stopChild(agent.child)
  await gw.close()
  await stopAll()
}
for (const f of readdirSync(profDir)) console.log(execFileSync(process.execPath, [new URL('./profile-summary.mjs', import.meta.url).pathname, join(profDir, f), '30'], { encoding: 'utf8' }))
