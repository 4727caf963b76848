// Scenario 3: one large download and one large upload, each through a single request, so
// the figure is per-stream throughput: framing, copies and flow-control windows.
import { bulkDownload, bulkUpload } from '../lib/http-clients.mjs'
import { fmt, GiB, MiB, ratio, verdict } from '../lib/format.mjs'

export default {
  id: 3,
  title: 'Bulk: one download and one upload through one request',
  target: 'gw-http ≥ 500 MiB/s each way; gw-https within 30% of gw-http',
  columns: [
    { key: 'size', label: 'size', fmt: fmt.mb },
    { key: 'down', label: 'download', fmt: fmt.mibps },
    { key: 'downVsDirect', label: 'down vs direct', fmt: fmt.pct },
    { key: 'up', label: 'upload', fmt: fmt.mibps },
    { key: 'upVsDirect', label: 'up vs direct', fmt: fmt.pct },
    { key: 'error', label: 'error', fmt: fmt.text },
  ],
  async run({ targets, profile, log }) {
    const rows = []
    for (const t of targets.values()) {
      if (!t.available) { rows.push({ path: t.name, unavailable: t.reason }); continue }
      const size = profile.bulkBytes
      log(`  ${t.name}: ${size / MiB} MiB down, ${size / MiB} MiB up`)
      const row = { path: t.name, size }
      try { row.down = (await bulkDownload(t, size)).mibps } catch (err) { row.error = err.message }
      try { row.up = (await bulkUpload(t, size)).mibps } catch (err) { row.error = (row.error ? `${row.error}; ` : '') + err.message }
      rows.push(row)
    }
    const direct = rows.find((r) => r.path === 'direct')
    for (const r of rows) {
      r.downVsDirect = ratio(r.down, direct?.down)
      r.upVsDirect = ratio(r.up, direct?.up)
    }
    const http = rows.find((r) => r.path === 'gw-http')
    const https = rows.find((r) => r.path === 'gw-https')
    const httpsShare = Math.min(ratio(https?.down, http?.down), ratio(https?.up, http?.up))
    return {
      rows,
      verdicts: [
        verdict('gw-http download ≥ 500 MiB/s', Number.isFinite(http?.down) ? http.down >= 500 : null, fmt.mibps(http?.down)),
        verdict('gw-http upload ≥ 500 MiB/s', Number.isFinite(http?.up) ? http.up >= 500 : null, fmt.mibps(http?.up)),
        verdict('gw-https ≥ 70% of gw-http each way', Number.isFinite(httpsShare) ? httpsShare >= 0.7 : null, `worst direction ${fmt.pct(httpsShare)}`),
      ],
      notes: profile.bulkBytes < GiB ? [`${profile.bulkBytes / MiB} MiB per transfer in this profile (1 GiB in the full run).`] : [],
    }
  },
}
