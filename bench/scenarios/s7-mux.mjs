// Scenario 7: the multiplexer alone, no HTTP: one stream over a loopback ws pair, ours
// against yamux-js and against raw ws messages. Each runs in a fresh process.
import { startProc } from '../lib/children.mjs'
import { fmt, MiB, ratio, verdict } from '../lib/format.mjs'

export default {
  id: 7,
  title: 'The multiplexer alone: one stream over a ws pair',
  target: 'gw mux ≥ 60% of raw ws',
  columns: [
    { key: 'bytes', label: 'sent', fmt: fmt.mb },
    { key: 'mibps', label: 'throughput', fmt: fmt.mibps },
    { key: 'vsRaw', label: 'vs raw ws', fmt: fmt.pct },
  ],
  async run({ profile, log }) {
    const rows = []
    for (const impl of ['raw ws', 'gw mux', 'yamux-js']) {
      const arg = { 'raw ws': 'raw', 'gw mux': 'gw', 'yamux-js': 'yamux-js' }[impl]
      log(`  ${impl}: up to ${profile.s7Bytes / MiB} MiB or ${profile.s7MaxMs / 1000} s`)
      try {
        const { message } = await startProc('mux-bench.mjs', [arg, String(profile.s7Bytes), String(profile.s7MaxMs)], { timeoutMs: profile.s7MaxMs + 30_000 })
        if (message.type !== 'ready') rows.push({ path: impl, unavailable: message.reason })
        else rows.push({ path: impl, bytes: message.bytes, mibps: message.mibps })
      } catch (err) {
        rows.push({ path: impl, unavailable: err.message })
      }
    }
    const raw = rows.find((r) => r.path === 'raw ws')
    for (const r of rows) r.vsRaw = ratio(r.mibps, raw?.mibps)
    const gw = rows.find((r) => r.path === 'gw mux')
    return {
      rows,
      verdicts: [verdict('gw mux ≥ 60% of raw ws', Number.isFinite(gw?.vsRaw) ? gw.vsRaw >= 0.6 : null, fmt.pct(gw?.vsRaw))],
      notes: ['yamux-js waits 100 ms whenever its send window is closed, so it is time-boxed: its figure is what arrived in the time allowed.'],
    }
  },
}
