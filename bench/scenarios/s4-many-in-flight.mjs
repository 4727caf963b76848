// Scenario 4: 10,000 requests at once, each on its own connection, to an upstream that
// answers after 1 s. Every one must succeed; the tunnel's peak memory shows what one
// in-flight request costs in the relay and the agent.
import { concurrent } from '../lib/http-clients.mjs'
import { memoryOf, resetPeak, sampleRss } from '../lib/children.mjs'
import { startLocaltunnel, waitRoutable } from '../lib/paths.mjs'
import { fmt, MiB, verdict } from '../lib/format.mjs'

export default {
  id: 4,
  title: 'Many in flight: concurrent requests, upstream answers after a delay',
  target: 'gw-http: every request succeeds; relay + agent peak RSS ≤ 400 MB',
  // TLS would add 10,000 handshakes to what this measures; it is in the full run only.
  // The anchors (nginx, ssh -R) are not in it: it measures gw's memory per request in flight.
  paths: (profile) => profile.fewPaths ?? (profile.name === 'full' ? ['direct', 'gw-http', 'gw-https', 'gw-bare', 'gw-proposed', 'localtunnel'] : ['direct', 'gw-http', 'gw-bare', 'gw-proposed', 'localtunnel']),
  columns: [
    { key: 'succeeded', label: 'succeeded', fmt: fmt.text },
    { key: 'seconds', label: 'wall time', fmt: (v) => (Number.isFinite(v) ? `${fmt.d1(v)} s` : '–') },
    { key: 'peakA', label: 'peak RSS (relay / lt-server)', fmt: fmt.mb },
    { key: 'peakB', label: 'peak RSS (agent / lt-client)', fmt: fmt.mb },
    { key: 'peakSum', label: 'peak sum', fmt: fmt.mb },
    { key: 'failures', label: 'failures', fmt: fmt.text },
  ],
  async run({ targets, upstream, profile, log }) {
    const rows = []
    const wanted = this.paths(profile)
    for (const shared of targets.values()) {
      if (!wanted.includes(shared.name)) continue
      if (!shared.available) { rows.push({ path: shared.name, unavailable: shared.reason }); continue }
      // Each tunnel gets a fresh pair of processes: the peak is then this scenario's alone,
      // and localtunnel's queue of unanswered requests does not stall the next scenarios.
      // (The smoke profile only proves the harness runs, and reuses the shared processes.)
      const fresh = profile.name === 'smoke' ? { target: shared, close: async () => {} } : await freshTarget(shared, upstream).catch((err) => ({ error: err }))
      if (fresh.error) { rows.push({ path: shared.name, unavailable: fresh.error.message }); continue }
      const t = fresh.target
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
      await fresh.close()
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
      notes: [`The direct row has no tunnel processes. Each tunnel runs in fresh processes for this scenario; peak RSS is absolute (it includes the process's baseline), as the target is.${profile.s4Count < 10_000 ? ` ${profile.s4Count} requests in this profile (10,000 in quick and full).` : ''}`],
    }
  },
}

/** A new relay + agent (or localtunnel pair) for one path; direct needs none. */
async function freshTarget(shared, upstream) {
  if (shared.procs.length === 0) return { target: shared, close: async () => {} }
  if (shared.name === 'localtunnel') {
    const lt = await startLocaltunnel(upstream.port, 'benchlt4')
    if (!lt.available) throw new Error(lt.reason)
    const target = { ...shared, port: lt.port, host: lt.host, procs: lt.procs }
    await waitRoutable(target).catch(async (err) => { await lt.close(); throw err })
    return { target, close: lt.close }
  }
  // gw paths start a new pair of their own kind (CLI relay and agent, or the bare agent).
  const gw = await shared.fresh('bench4')
  const target = { ...shared, port: gw.port, host: gw.host, ca: gw.ca ?? shared.ca, procs: gw.procs }
  await waitRoutable(target).catch(async (err) => { await gw.close(); throw err })
  return { target, close: gw.close }
}
