// Scenario 1: saturation with small requests. autocannon, 1 KiB GET, 64 connections.
// The figure that matters is req/s as a fraction of direct: a tunnelled request crosses
// three processes where a direct one crosses one.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { ask, cpuOf } from '../lib/children.mjs'
import { saturate } from '../lib/http-clients.mjs'
import { fmt, ratio, verdict } from '../lib/format.mjs'
import { median } from '../lib/stats.mjs'

/** `relay 70 · agent 81`: each process's share, for the table (the JSON keeps the numbers). */
export function byProcess(procs, values, digits = 0) {
  if (!procs.length) return undefined
  return procs.map((p, i) => `${p.role} ${Number.isFinite(values[i]) ? values[i].toFixed(digits) : '–'}`).join(' · ')
}


export default {
  id: 1,
  title: 'Small requests: 1 KiB GET, 64 connections',
  target: 'gw-http (the CLI, capture and request log on) ≥ 25% of direct and ≥ 2× ssh -R; capture + log cost ≤ 10% of gw-bare\'s req/s',
  columns: [
    { key: 'rps', label: 'req/s', fmt: fmt.int },
    { key: 'rpsVsDirect', label: 'req/s vs direct', fmt: fmt.pct },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'p50VsDirect', label: 'p50 vs direct', fmt: fmt.x },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'p99VsDirect', label: 'p99 vs direct', fmt: fmt.x },
    { key: 'cpuPerReq', label: 'tunnel CPU/req', fmt: fmt.us },
    { key: 'cpuByProcessText', label: 'CPU µs/req by process', fmt: fmt.text },
    { key: 'upstreamCpuPerReq', label: 'upstream CPU/req', fmt: fmt.us },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ targets, upstream, profile, log, profileDir }) {
    const rows = []
    const live = []
    for (const t of targets.values()) {
      if (!t.available) rows.push({ path: t.name, unavailable: t.reason })
      else live.push({ t, pids: t.procs.map((p) => p.pid), runs: [], cpu: t.procs.map(() => 0), upCpu: 0 })
    }
    const rounds = profile.s1Rounds
    const seconds = profile.s1Duration / rounds
    for (const { t } of live) {
      if (!profile.s1WarmSeconds) break // the smoke profile proves the path works, nothing more
      log(`  ${t.name}: ${profile.s1WarmSeconds} s to warm up`)
      // The same load first, unmeasured: a cold path pays for V8's compiling and tiering up
      // in its measured seconds. Without it the first gw path measured (gw-http) was slower,
      // and cost more CPU per request, than gw-https, which ran on the processes it warmed.
      await saturate(t, { connections: 64, duration: profile.s1WarmSeconds })
    }
    // Rounds alternate between the paths, so that load from other work on the machine, which
    // comes and goes over minutes, falls on every path alike; each figure is a median.
    for (let round = 0; round < rounds; round++) {
      for (const path of live) {
        const { t, pids } = path
        log(`  ${t.name}: round ${round + 1}/${rounds}, ${seconds} s at 64 connections`)
        // Only the first round is profiled: the relay and agent serve both gw paths.
        const profiling = round === 0 && profileDir && t.procs.length > 0 && t.procs.every((p) => p.child.connected)
        if (profiling) await Promise.all(t.procs.map((p) => ask(p.child, { type: 'profile-start' }, 'profile-started')))
        // CPU time per request in each process is the figure that noise from other work on
        // the machine does not move much: it says where a request's cost goes.
        const cpuBefore = pids.map(cpuOf)
        const upBefore = cpuOf(upstream.pid)
        const r = await saturate(t, { connections: 64, duration: seconds })
        pids.forEach((pid, i) => { path.cpu[i] += cpuOf(pid) - cpuBefore[i] })
        path.upCpu += cpuOf(upstream.pid) - upBefore
        path.runs.push(r)
        if (profiling) {
          mkdirSync(profileDir, { recursive: true })
          const files = await Promise.all(t.procs.map((p) => ask(p.child, { type: 'profile-stop', file: join(profileDir, `s1-${t.name}-${p.role}.cpuprofile`) }, 'profile-written', 30_000)))
          log(`    profiles: ${files.map((f) => f?.file).join(', ')}`)
        }
      }
    }
    for (const { t, runs, cpu, upCpu } of live) {
      const done = runs.reduce((a, r) => a + r.ok, 0) || NaN
      rows.push({
        path: t.name,
        rps: median(runs.map((r) => r.rps)),
        p50: median(runs.map((r) => r.p50)),
        p99: median(runs.map((r) => r.p99)),
        errors: runs.reduce((a, r) => a + r.errors, 0),
        ok: done,
        rounds: runs.map((r) => ({ rps: r.rps, p50: r.p50, p99: r.p99 })),
        cpuPerReq: t.procs.length ? cpu.reduce((a, b) => a + b, 0) / done : NaN,
        cpuPerReqByProcess: Object.fromEntries(t.procs.map((p, i) => [p.role, cpu[i] / done])),
        cpuByProcessText: byProcess(t.procs, cpu.map((c) => c / done)),
        upstreamCpuPerReq: upCpu / done,
      })
    }
    const direct = rows.find((r) => r.path === 'direct')
    for (const r of rows) {
      r.rpsVsDirect = ratio(r.rps, direct?.rps)
      r.p50VsDirect = ratio(r.p50, direct?.p50)
      r.p99VsDirect = ratio(r.p99, direct?.p99)
    }
    const gw = rows.find((r) => r.path === 'gw-http')
    const bare = rows.find((r) => r.path === 'gw-bare')
    const ssh = rows.find((r) => r.path === 'ssh-R')
    const lt = rows.find((r) => r.path === 'localtunnel')
    const vsSsh = ratio(gw?.rps, ssh?.rps)
    const vsBare = ratio(gw?.rps, bare?.rps)
    const vsLt = ratio(gw?.rps, lt?.rps)
    return {
      rows,
      verdicts: [
        verdict('gw-http req/s ≥ 25% of direct', Number.isFinite(gw?.rpsVsDirect) ? gw.rpsVsDirect >= 0.25 : null, `${fmt.pct(gw?.rpsVsDirect)} of direct`),
        verdict('gw-http req/s ≥ 2× ssh -R', Number.isFinite(vsSsh) ? vsSsh >= 2 : null, `${fmt.x(vsSsh)} ssh -R; ${fmt.x(vsLt)} localtunnel`),
        verdict('capture and request log cost ≤ 10% of req/s (gw-http against gw-bare)', Number.isFinite(vsBare) ? vsBare >= 0.9 : null,
          `gw-http ${fmt.pct(vsBare)} of gw-bare's req/s; agent ${fmt.us(gw?.cpuPerReqByProcess?.agent)} against ${fmt.us(bare?.cpuPerReqByProcess?.agent)} per request`),
      ],
    }
  },
}
