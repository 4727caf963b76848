// Scenario 1: saturation with small requests. autocannon, 1 KiB GET, 64 connections.
// The figure that matters is req/s as a fraction of direct: a tunnelled request crosses
// three processes where a direct one crosses one.
import { saturate } from '../lib/http-clients.mjs'
import { fmt, ratio, verdict } from '../lib/format.mjs'

export default {
  id: 1,
  title: 'Small requests: 1 KiB GET, 64 connections',
  target: 'gw-http ≥ 10× localtunnel req/s and ≥ 25% of direct',
  columns: [
    { key: 'rps', label: 'req/s', fmt: fmt.int },
    { key: 'rpsVsDirect', label: 'req/s vs direct', fmt: fmt.pct },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'p50VsDirect', label: 'p50 vs direct', fmt: fmt.x },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'p99VsDirect', label: 'p99 vs direct', fmt: fmt.x },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ targets, profile, log }) {
    const rows = []
    for (const t of targets.values()) {
      if (!t.available) { rows.push({ path: t.name, unavailable: t.reason }); continue }
      log(`  ${t.name}: ${profile.s1Duration} s at 64 connections`)
      const r = await saturate(t, { connections: 64, duration: profile.s1Duration })
      rows.push({ path: t.name, ...r })
    }
    const direct = rows.find((r) => r.path === 'direct')
    for (const r of rows) {
      r.rpsVsDirect = ratio(r.rps, direct?.rps)
      r.p50VsDirect = ratio(r.p50, direct?.p50)
      r.p99VsDirect = ratio(r.p99, direct?.p99)
    }
    const gw = rows.find((r) => r.path === 'gw-http')
    const lt = rows.find((r) => r.path === 'localtunnel')
    const vsLt = ratio(gw?.rps, lt?.rps)
    return {
      rows,
      verdicts: [
        verdict('gw-http req/s ≥ 10× localtunnel', Number.isFinite(vsLt) ? vsLt >= 10 : null, `${fmt.x(vsLt)} localtunnel`),
        verdict('gw-http req/s ≥ 25% of direct', Number.isFinite(gw?.rpsVsDirect) ? gw.rpsVsDirect >= 0.25 : null, `${fmt.pct(gw?.rpsVsDirect)} of direct`),
      ],
    }
  },
}
