// Scenario 4: 10,000 requests at once, each on its own connection, to an upstream that
// answers after 1 s. Every one must succeed; the tunnel's peak memory shows what one
// in-flight request costs in the relay and the agent.
import { concurrent } from '../lib/http-clients.mjs'
import { memoryOf, resetPeak, sampleRss } from '../lib/children.mjs'
import { fmt, MiB, verdict } from '../lib/format.mjs'

export default {
  id: 4,
  title: 'Many in flight: concurrent requests, upstream answers after a delay',
  target: 'gw-http: every request succeeds; relay + agent peak RSS ≤ 400 MB',
  // TLS would add 10,000 handshakes to what this measures; it is in the full run only.
  paths: (profile) => (profile.name === 'full' ? ['direct', 'gw-http', 'gw-https', 'localtunnel'] : ['direct', 'gw-http', 'localtunnel']),
  columns: [
    { key: 'succeeded', label: 'succeeded', fmt: fmt.text },
    { key: 'seconds', label: 'wall time', fmt: (v) => (Number.isFinite(v) ? `${fmt.d1(v)} s` : '–') },
    { key: 'peakA', label: 'peak RSS (relay / lt-server)', fmt: fmt.mb },
    { key: 'peakB', label: 'peak RSS (agent / lt-client)', fmt: fmt.mb },
    { key: 'peakSum', label: 'peak sum', fmt: fmt.mb },
    { key: 'failures', label: 'failures', fmt: fmt.text },
  ],
  async run({ targets, profile, log }) {
    const rows = []
    const wanted = this.paths(profile)
    for (const t of targets.values()) {
      if (!wanted.includes(t.name)) continue
      if (!t.available) { rows.push({ path: t.name, unavailable: t.reason }); continue }
      // localtunnel holds 10 sockets to its client and queues the rest; at 1 s per request
      // it cannot finish 10,000, so it gets a short deadline and reports what got through.
      const timeoutMs = t.name === 'localtunnel' ? profile.s4LtTimeoutMs : profile.s4TimeoutMs
      log(`  ${t.name}: ${profile.s4Count} at once, upstream delay ${profile.s4DelayMs} ms, deadline ${timeoutMs / 1000} s`)
      const pids = t.procs.map((p) => p.pid)
      const peakReset = pids.every(resetPeak)
      const sampler = sampleRss(pids, 100)
      const r = await concurrent(t, { count: profile.s4Count, delayMs: profile.s4DelayMs, timeoutMs })
      const { max } = sampler.stop()
      // VmHWM catches peaks between samples when it could be reset; the sampled max is the fallback.
      const peaks = pids.map((p) => Math.max(max.get(p), peakReset ? memoryOf(p).peak : 0))
      rows.push({
        path: t.name,
        ok: r.ok,
        count: r.count,
        succeeded: `${r.ok.toLocaleString('en-US')}/${r.count.toLocaleString('en-US')}`,
        seconds: r.seconds,
        peakA: peaks[0],
        peakB: peaks[1],
        peakSum: peaks.length ? peaks.reduce((a, b) => a + b, 0) : NaN,
        failures: Object.entries(r.failures).map(([k, v]) => `${v}× ${k}`).join(', ') || undefined,
      })
      // Let sockets in TIME_WAIT and the upstream's timers drain before the next path.
      await new Promise((res) => setTimeout(res, 500))
    }
    const gw = rows.find((r) => r.path === 'gw-http')
    const limit = 400 * 1000 * 1000
    return {
      rows,
      verdicts: [
        verdict(`gw-http ${profile.s4Count.toLocaleString('en-US')}/${profile.s4Count.toLocaleString('en-US')} succeed`, gw && !gw.unavailable ? gw.ok === gw.count : null, gw?.succeeded),
        verdict('gw-http relay + agent peak RSS ≤ 400 MB', Number.isFinite(gw?.peakSum) ? gw.peakSum <= limit : null, `${fmt.d1(gw?.peakSum / 1e6)} MB (${fmt.mb(gw?.peakSum)})`),
      ],
      notes: [`The direct row has no tunnel processes. Peak RSS is absolute (it includes the process's baseline), as the target is.${profile.s4Count < 10_000 ? ` ${profile.s4Count} requests in this profile (10,000 in quick and full).` : ''}`],
    }
  },
}
