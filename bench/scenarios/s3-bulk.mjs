// Scenario 3: one large download and one large upload, each through a single request, so
// the figure is per-stream throughput: framing, copies and flow-control windows.
import { bulkDownload, bulkUpload } from '../lib/http-clients.mjs'
import { cpuOf } from '../lib/children.mjs'
import { byProcess, fmt, GiB, MiB, ratio, verdict } from '../lib/format.mjs'

/** Run one transfer and return its MiB/s and each process's CPU ms per MiB moved. */
async function measured(t, upstream, size, transfer) {
  const pids = [...t.procs.map((p) => p.pid), upstream.pid]
  const before = pids.map(cpuOf)
  const r = await transfer(t, size)
  const perMiB = pids.map((pid, i) => (cpuOf(pid) - before[i]) / 1000 / (size / MiB))
  return { mibps: r.mibps, tunnel: perMiB.slice(0, -1), upstream: perMiB.at(-1) }
}

export default {
  id: 3,
  title: 'Bulk: one download and one upload through one request',
  target: 'gw-http ≥ 800 MiB/s each way and ≥ 2× ssh -R; gw-https ≥ 70% of gw-http',
  columns: [
    { key: 'size', label: 'size', fmt: fmt.mb },
    { key: 'down', label: 'download', fmt: fmt.mibps },
    { key: 'downVsDirect', label: 'down vs direct', fmt: fmt.pct },
    { key: 'up', label: 'upload', fmt: fmt.mibps },
    { key: 'upVsDirect', label: 'up vs direct', fmt: fmt.pct },
    { key: 'cpuDownText', label: 'CPU ms/MiB down, by process', fmt: fmt.text },
    { key: 'cpuUpText', label: 'CPU ms/MiB up, by process', fmt: fmt.text },
    { key: 'error', label: 'error', fmt: fmt.text },
  ],
  async run({ targets, upstream, profile, log }) {
    const rows = []
    for (const t of targets.values()) {
      if (!t.available) { rows.push({ path: t.name, unavailable: t.reason }); continue }
      const size = profile.bulkBytes
      log(`  ${t.name}: ${size / MiB} MiB down, ${size / MiB} MiB up`)
      const row = { path: t.name, size }
      // CPU per MiB in each process of the path (and the upstream): where a byte's cost goes.
      try {
        const d = await measured(t, upstream, size, bulkDownload)
        Object.assign(row, { down: d.mibps, cpuDown: Object.fromEntries(t.procs.map((p, i) => [p.role, d.tunnel[i]])), upstreamCpuDown: d.upstream, cpuDownText: byProcess(t.procs, d.tunnel, 2) })
      } catch (err) { row.error = err.message }
      try {
        const u = await measured(t, upstream, size, bulkUpload)
        Object.assign(row, { up: u.mibps, cpuUp: Object.fromEntries(t.procs.map((p, i) => [p.role, u.tunnel[i]])), upstreamCpuUp: u.upstream, cpuUpText: byProcess(t.procs, u.tunnel, 2) })
      } catch (err) { row.error = (row.error ? `${row.error}; ` : '') + err.message }
      rows.push(row)
    }
    const direct = rows.find((r) => r.path === 'direct')
    for (const r of rows) {
      r.downVsDirect = ratio(r.down, direct?.down)
      r.upVsDirect = ratio(r.up, direct?.up)
    }
    const http = rows.find((r) => r.path === 'gw-http')
    const https = rows.find((r) => r.path === 'gw-https')
    const ssh = rows.find((r) => r.path === 'ssh-R')
    const vsSsh = Math.min(ratio(http?.down, ssh?.down), ratio(http?.up, ssh?.up))
    const httpsShare = Math.min(ratio(https?.down, http?.down), ratio(https?.up, http?.up))
    return {
      rows,
      verdicts: [
        verdict('gw-http download ≥ 800 MiB/s', Number.isFinite(http?.down) ? http.down >= 800 : null, fmt.mibps(http?.down)),
        verdict('gw-http upload ≥ 800 MiB/s', Number.isFinite(http?.up) ? http.up >= 800 : null, fmt.mibps(http?.up)),
        verdict('gw-http ≥ 2× ssh -R each way', Number.isFinite(vsSsh) ? vsSsh >= 2 : null, `worst direction ${fmt.x(vsSsh)}`),
        verdict('gw-https ≥ 70% of gw-http each way', Number.isFinite(httpsShare) ? httpsShare >= 0.7 : null, `worst direction ${fmt.pct(httpsShare)}`),
      ],
      notes: profile.bulkBytes < GiB ? [`${profile.bulkBytes / MiB} MiB per transfer in this profile (1 GiB in the full run).`] : [],
    }
  },
}
