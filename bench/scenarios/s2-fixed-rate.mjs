// Scenario 2: latency at a fixed, sustainable rate (1,000 req/s), where queueing does not
// hide the cost of the hops. Reported as latency added over direct.
import { fixedRate } from '../lib/http-clients.mjs'
import { fmt, verdict } from '../lib/format.mjs'

export default {
  id: 2,
  title: 'Fixed rate: 1,000 req/s of 1 KiB GET',
  target: 'gw-http adds ≤ 0.5 ms at p50 and ≤ 3 ms at p99 over direct',
  columns: [
    { key: 'achievedRate', label: 'rate', fmt: fmt.int },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'addedP50', label: 'added p50', fmt: fmt.addedMs },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'addedP99', label: 'added p99', fmt: fmt.addedMs },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ targets, profile, log }) {
    const rows = []
    for (const t of targets.values()) {
      if (!t.available) { rows.push({ path: t.name, unavailable: t.reason }); continue }
      log(`  ${t.name}: ${profile.s2Rate} req/s for ${profile.s2Duration} s`)
      // A second at the same rate first: this scenario is the steady state. A cold path
      // can take seconds to settle (see tools/repro-cold-stall.mjs), which is another question.
      await fixedRate(t, { rate: profile.s2Rate, duration: profile.name === 'smoke' ? 0.2 : 1 })
      const r = await fixedRate(t, { rate: profile.s2Rate, duration: profile.s2Duration })
      rows.push({ path: t.name, ...r })
    }
    const direct = rows.find((r) => r.path === 'direct')
    for (const r of rows) {
      r.addedP50 = r.p50 - direct?.p50
      r.addedP99 = r.p99 - direct?.p99
    }
    const gw = rows.find((r) => r.path === 'gw-http')
    const has = Number.isFinite(gw?.addedP50)
    return {
      rows,
      verdicts: [
        verdict('gw-http added p50 ≤ 0.5 ms', has ? gw.addedP50 <= 0.5 : null, fmt.addedMs(gw?.addedP50)),
        verdict('gw-http added p99 ≤ 3 ms', has ? gw.addedP99 <= 3 : null, fmt.addedMs(gw?.addedP99)),
      ],
    }
  },
}
