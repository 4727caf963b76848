// Scenario 2: latency at a fixed, sustainable rate (1,000 req/s), where queueing does not
// hide the cost of the hops. Reported as latency added over direct.
import { fixedRate } from '../lib/http-clients.mjs'
import { fmt, verdict } from '../lib/format.mjs'
import { median } from '../lib/stats.mjs'


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
    const live = []
    for (const t of targets.values()) {
      if (profile.fewPaths && !profile.fewPaths.includes(t.name)) continue
      if (!t.available) rows.push({ path: t.name, unavailable: t.reason })
      else live.push({ t, runs: [] })
    }
    for (const { t } of live) {
      log(`  ${t.name}: ${profile.s2Rate} req/s for 1 s to warm up`)
      // A second at the same rate first: this scenario is the steady state. A cold path
      // can take seconds to settle (see tools/repro-cold-stall.mjs), which is another question.
      await fixedRate(t, { rate: profile.s2Rate, duration: profile.name === 'smoke' ? 0.2 : 1 })
    }
    // Rounds alternate between the paths, and the latency added is taken against direct in
    // the same round: a p99 is a few dozen requests a second, which a burst of other work
    // on the machine moves by milliseconds.
    const rounds = profile.s2Rounds
    for (let round = 0; round < rounds; round++) {
      for (const path of live) {
        log(`  ${path.t.name}: round ${round + 1}/${rounds}, ${profile.s2Rate} req/s for ${profile.s2Duration / rounds} s`)
        path.runs.push(await fixedRate(path.t, { rate: profile.s2Rate, duration: profile.s2Duration / rounds }))
      }
    }
    const directRuns = live.find((p) => p.t.name === 'direct')?.runs
    for (const { t, runs } of live) {
      rows.push({
        path: t.name,
        achievedRate: median(runs.map((r) => r.achievedRate)),
        p50: median(runs.map((r) => r.p50)),
        p99: median(runs.map((r) => r.p99)),
        errors: runs.reduce((a, r) => a + r.errors, 0),
        addedP50: directRuns ? median(runs.map((r, i) => r.p50 - directRuns[i].p50)) : NaN,
        addedP99: directRuns ? median(runs.map((r, i) => r.p99 - directRuns[i].p99)) : NaN,
        rounds: runs.map((r) => ({ p50: r.p50, p99: r.p99, achievedRate: r.achievedRate })),
      })
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
