// Scenario 1's method, the one round loop of scenarios 1, 9, 10 and 11: every available
// target is warmed up with the load, unmeasured, then measured in rounds that alternate
// between the targets, so that load from other work on the machine, which comes and goes
// over minutes, falls on every path alike; each figure is then a median of the rounds.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { ask, cpuOf } from './children.mjs'
import { byProcess } from './format.mjs'
import { median } from './stats.mjs'

/**
 * Runs `load(t, seconds)` on each available target: `warmSeconds` first (none when 0:
 * the smoke profile proves the path works, nothing more), then `rounds` rounds of
 * `seconds`. CPU time of each of the target's processes (`t.procs`) and of its upstream
 * (`upstreamPid(t)`, by default `t.upstreamPid`) is read around each round: CPU per request
 * is the figure that noise from other work on the machine does not move much. With
 * `profileDir`, the gw processes write V8 CPU profiles (`<tag>-<target>-<role>.cpuprofile`)
 * during each target's first round only (one relay and agent may serve several targets).
 * `what` goes before "round" in the progress lines.
 * Returns `rows`, one `{path, unavailable}` per unavailable target, and `live`, one
 * `{t, runs, cpu, upCpu}` per measured target: the loads' results in round order, and the
 * CPU µs each process and the upstream spent in them.
 */
export async function runInRounds(targets, load, { warmSeconds, rounds, seconds, log, profileDir, tag, what, upstreamPid = (t) => t.upstreamPid }) {
  const rows = []
  const live = []
  for (const t of targets) {
    if (!t.available) rows.push({ path: t.name, unavailable: t.reason })
    else live.push({ t, runs: [], cpu: t.procs.map(() => 0), upCpu: 0 })
  }
  for (const { t } of live) {
    if (!warmSeconds) break
    log(`  ${t.name}: ${warmSeconds} s to warm up`)
    // A cold path pays for V8's compiling and tiering up in its measured seconds. Without the
    // warm-up the first gw path of scenario 1 (gw-http) was slower, and cost more CPU per
    // request, than gw-https, which ran on the processes it warmed.
    await load(t, warmSeconds)
  }
  for (let round = 0; round < rounds; round++) {
    for (const path of live) {
      const { t } = path
      log(`  ${t.name}: ${what ? `${what}, ` : ''}round ${round + 1}/${rounds}, ${seconds} s`)
      const profiling = round === 0 && profileDir && t.procs.length > 0 && t.procs.every((p) => p.child?.connected)
      if (profiling) await Promise.all(t.procs.map((p) => ask(p.child, { type: 'profile-start' }, 'profile-started')))
      const before = t.procs.map((p) => cpuOf(p.pid))
      const upBefore = cpuOf(upstreamPid(t))
      const r = await load(t, seconds)
      t.procs.forEach((p, i) => { path.cpu[i] += cpuOf(p.pid) - before[i] })
      path.upCpu += cpuOf(upstreamPid(t)) - upBefore
      path.runs.push(r)
      if (profiling) {
        mkdirSync(profileDir, { recursive: true })
        const files = await Promise.all(t.procs.map((p) => ask(p.child, { type: 'profile-stop', file: join(profileDir, `${tag}-${t.name}-${p.role}.cpuprofile`) }, 'profile-written', 30_000)))
        log(`    profiles: ${files.map((f) => f?.file).join(', ')}`)
      }
    }
  }
  return { rows, live }
}

/**
 * `runInRounds` for a request load (scenarios 1, 9 and 11): `load` returns {rps, ok, errors,
 * firstError?, p50, p99, alpn?}. Returns a row per target (unavailable ones with their
 * reason): medians of the rounds, and CPU µs per request by process and in the upstream.
 */
export async function measureInRounds(targets, load, options) {
  const { rows, live } = await runInRounds(targets, load, options)
  for (const { t, runs, cpu, upCpu } of live) {
    const done = runs.reduce((a, r) => a + r.ok, 0) || NaN
    rows.push({
      path: t.name,
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      errors: runs.reduce((a, r) => a + r.errors, 0),
      firstError: runs.find((r) => r.firstError)?.firstError,
      ok: done,
      ...(runs[0]?.alpn ? { alpn: [...new Set(runs.map((r) => r.alpn))].join(',') } : {}),
      rounds: runs.map((r) => ({ rps: r.rps, p50: r.p50, p99: r.p99 })),
      cpuPerReq: t.procs.length ? cpu.reduce((a, b) => a + b, 0) / done : NaN,
      cpuPerReqByProcess: Object.fromEntries(t.procs.map((p, i) => [p.role, cpu[i] / done])),
      cpuByProcessText: byProcess(t.procs, cpu.map((c) => c / done)),
      upstreamCpuPerReq: upCpu / done,
    })
  }
  return rows
}
