// Scenario 5: the relay's cost of an idle agent. A fresh relay; its RSS after a full GC,
// then again after N agents (spread over a few processes) have connected and settled.
import { collectGarbage, memoryOf, startProc, stopChild } from '../lib/children.mjs'
import { fmt, verdict } from '../lib/format.mjs'

export default {
  id: 5,
  title: 'Many tunnels: idle agents connected to one relay',
  target: 'gw: ≤ 32 KiB of relay RSS per idle agent (issue 15; 64 KiB before)',
  columns: [
    { key: 'agents', label: 'agents', fmt: fmt.text },
    { key: 'connectSeconds', label: 'connect time', fmt: (v) => (Number.isFinite(v) ? `${fmt.d1(v)} s` : '–') },
    { key: 'before', label: 'relay RSS before', fmt: fmt.mb },
    { key: 'after', label: 'relay RSS after', fmt: fmt.mb },
    { key: 'perAgent', label: 'RSS per agent', fmt: fmt.kib },
    { key: 'heapPerAgent', label: 'of which JS heap', fmt: fmt.kib },
  ],
  async run({ upstream, profile, log }) {
    const rows = []
    const n = profile.s5Agents
    const procs = Math.min(profile.s5Procs, n)
    log(`  gw: ${n} agents over ${procs} processes`)
    const relay = await startProc('relay.mjs')
    if (relay.message.type !== 'ready') {
      return { rows: [{ path: 'gw', unavailable: relay.message.reason }], verdicts: [verdict('≤ 32 KiB per idle agent', null, 'unavailable')] }
    }
    const agentProcs = []
    try {
      await collectGarbage([relay.child])
      const before = memoryOf(relay.pid).rss
      const heapBefore = await heapOf(relay.child)
      const began = performance.now()
      const per = Math.ceil(n / procs)
      const started = await Promise.all(Array.from({ length: procs }, (_, i) => {
        const count = Math.min(per, n - i * per)
        return startProc('agents.mjs', [relay.message.httpUrl, upstream.url, `idle${i}`, String(count)], { timeoutMs: 120_000 })
      }))
      agentProcs.push(...started)
      const bad = started.find((s) => s.message.type !== 'ready')
      if (bad) throw new Error(bad.message.reason)
      const connected = started.reduce((a, s) => a + s.message.count, 0)
      const connectSeconds = (performance.now() - began) / 1000
      // Settle: handshakes finished, first heartbeats exchanged, then a full GC.
      await new Promise((r) => setTimeout(r, profile.s5SettleMs))
      await collectGarbage([relay.child])
      const after = memoryOf(relay.pid).rss
      const heapAfter = await heapOf(relay.child)
      rows.push({
        path: 'gw',
        agents: `${connected}/${n}`,
        connectSeconds,
        before,
        after,
        perAgent: (after - before) / connected,
        heapPerAgent: (heapAfter - heapBefore) / connected,
      })
    } catch (err) {
      rows.push({ path: 'gw', unavailable: err.message })
    } finally {
      for (const a of agentProcs) await stopChild(a.child)
      await stopChild(relay.child)
    }
    const gw = rows[0]
    return {
      rows,
      verdicts: [verdict('≤ 32 KiB of relay RSS per idle agent', Number.isFinite(gw?.perAgent) ? gw.perAgent <= 32 * 1024 : null, fmt.kib(gw?.perAgent))],
      notes: ['localtunnel is not measured here: its server opens a TCP listener and up to 10 sockets per client, a different cost model.'],
    }
  },
}

/** The relay's JS heap, asked over IPC (the relay wrapper answers `heap`). */
function heapOf(child) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.off('message', on); resolve(NaN) }, 2000)
    const on = (m) => { if (m?.type === 'heap') { clearTimeout(timer); child.off('message', on); resolve(m.heapUsed) } }
    child.on('message', on)
    child.send({ type: 'heap' })
  })
}
