#!/usr/bin/env node
// gw's benchmark harness:
//   npm run bench [-- --quick | --smoke] [--only 1,3 | --only h2,tcp,grpc] [--paths direct,gw-http] [--out DIR] [--profile] [--cpu-prof]
// --profile records V8 CPU profiles of each gw process during the first round of scenarios 1, 9 and 11 only.
// --variant relay-no-empty-pipeline[+…] adds a gw-proposed path running patches from bench/experiments.
// Starts one upstream and every path in front of it, runs the scenarios in order, prints a
// table per scenario and writes the raw figures. See bench/README.md.
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import os from 'node:os'
import { benchDir, stopAll, stopChild } from './lib/children.mjs'
import { machineInfo } from './lib/machine.mjs'
import { PATH_NAMES, startPaths, startUpstream } from './lib/paths.mjs'
import { PROFILES } from './lib/profiles.mjs'
import { textTable, writeResults } from './lib/report.mjs'
import s1 from './scenarios/s1-small-requests.mjs'
import s2 from './scenarios/s2-fixed-rate.mjs'
import s3 from './scenarios/s3-bulk.mjs'
import s4 from './scenarios/s4-many-in-flight.mjs'
import s5 from './scenarios/s5-many-tunnels.mjs'
import s6 from './scenarios/s6-slow-reader.mjs'
import s7 from './scenarios/s7-mux.mjs'
import s8 from './scenarios/s8-policy-cost.mjs'
import s9 from './scenarios/s9-http2.mjs'
import s10 from './scenarios/s10-tcp.mjs'
import s11 from './scenarios/s11-grpc.mjs'

const SCENARIOS = [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11]

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    paths: { type: 'string' },
    out: { type: 'string' },
    quiet: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    variant: { type: 'string' },
  },
})

const profile = PROFILES[values.smoke ? 'smoke' : values.quick ? 'quick' : 'full']
// --only takes scenario numbers or names (9 or h2, 10 or tcp, 11 or grpc).
const only = values.only ? new Set(values.only.split(',').map((x) => x.trim())) : undefined
const unknown = only ? [...only].filter((x) => !SCENARIOS.some((s) => String(s.id) === x || s.name === x)) : []
if (unknown.length) {
  console.error(`--only: no scenario ${unknown.join(', ')} (numbers 1–${SCENARIOS.length}, or ${SCENARIOS.filter((s) => s.name).map((s) => s.name).join(', ')})`)
  process.exit(2)
}
const scenarios = SCENARIOS.filter((s) => !only || only.has(String(s.id)) || (s.name && only.has(s.name)))
const requestedPaths = values.paths ? values.paths.split(',').map((p) => p.trim()) : undefined
const pathNames = requestedPaths ? requestedPaths.filter((p) => PATH_NAMES.includes(p)) : [...PATH_NAMES]
if (!pathNames.includes('direct')) pathNames.unshift('direct') // every ratio needs it
const outDir = values.out ?? join(benchDir, 'results')
const log = values.quiet ? () => {} : (msg) => process.stderr.write(`${msg}\n`)

const startedAt = new Date()
const run = { profile: profile.name, startedAt: startedAt.toISOString(), seconds: 0, machine: machineInfo(), sizes: profile, paths: {}, results: {} }

let upstream
let stack
const shutdown = async () => {
  await stack?.close().catch(() => {})
  if (upstream) await stopChild(upstream.child)
  await stopAll()
  if (run.variant) rmSync(run.variant.dir, { recursive: true, force: true })
}
process.once('SIGINT', () => { shutdown().finally(() => process.exit(130)) })

try {
  log(`gw bench: profile ${profile.name}, ${run.machine.cores} × ${run.machine.cpuModel}, Node ${run.machine.node}`)
  upstream = await startUpstream()
  // --cpu-prof: the relay and agent of the gw paths write V8 CPU profiles when they exit,
  // for bench/tools/profile-summary.mjs or Chrome DevTools.
  const profDir = join(outDir, 'profiles')
  const gwExecArgv = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []
  if (values['cpu-prof']) log(`  CPU profiles of the relay and the agent go to ${profDir}`)
  // --variant <experiment>[+<experiment>…]: a gw-proposed path running those patches.
  let variant
  if (values.variant) {
    try {
      const dir = execFileSync(process.execPath, [join(benchDir, 'experiments/make-variant.mjs'), values.variant], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
      variant = { dir, label: values.variant }
      run.variant = variant
      log(`  gw-proposed runs experiments ${values.variant} (${dir})`)
    } catch (err) {
      // A patch whose text is gone was usually applied by its owner: say so and go on.
      log(`  no gw-proposed path: ${String(err.stderr ?? err.message).trim()}`)
    }
  }
  // Scenarios 9 and 10 start paths of their own (h2 and tcp); the shared ones start only
  // when a scenario that uses them runs.
  const shared = scenarios.some((s) => !s.ownPaths)
  stack = shared ? await startPaths(upstream, pathNames, { gwExecArgv, variant }) : { targets: new Map(), close: async () => {} }
  for (const t of stack.targets.values()) {
    run.paths[t.name] = t.available ? { available: true, port: t.port, host: t.host, processes: t.procs.map((p) => p.role) } : { available: false, reason: t.reason }
    log(`  path ${t.name}: ${t.available ? `127.0.0.1:${t.port} Host ${t.host}` : `unavailable (${t.reason})`}`)
  }
  for (const s of scenarios) {
    log(`\nscenario ${s.id}: ${s.title}`)
    const began = performance.now()
    let result
    try {
      result = await s.run({ targets: stack.targets, upstream, profile, log, requestedPaths, gwExecArgv, profileDir: values.profile ? join(outDir, 'profiles') : undefined })
    } catch (err) {
      result = { rows: [], verdicts: [], error: err.stack ?? String(err) }
    }
    result.seconds = (performance.now() - began) / 1000
    run.results[s.id] = result
    console.log(`\n${textTable(s, result)}`)
  }
} finally {
  await shutdown()
}
run.seconds = (Date.now() - startedAt.getTime()) / 1000
run.machine.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100)
const complete = !values.only && !values.paths
const { jsonPath, mdPath } = writeResults(outDir, run, scenarios, complete)
console.log(`\n${Math.round(run.seconds)} s. Raw figures: ${jsonPath}${mdPath ? `; tables: ${mdPath}` : ' (a partial run leaves latest.md as it was)'}`)
