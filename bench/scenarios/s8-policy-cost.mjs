// Scenario 8: what the gateway features cost on scenario 1's load. Three agents as users
// run them (`gw http`), each on its own name at the shared relay, measured back to back:
//   baseline  --no-tui, no policy
//   policy    --no-tui, the 10-rule policy of the gateway issue
//   tui       the Ink UI on a real terminal (script(1)), no policy
// Targets come from the gateway issue (policy ≤ 15% of req/s) and the live-traffic issue
// (TUI ≤ 10%).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stopChild } from '../lib/children.mjs'
import { cliFeatures, startCliAgent } from '../lib/cli-agent.mjs'
import { saturate } from '../lib/http-clients.mjs'
import { waitRoutable } from '../lib/paths.mjs'
import { fmt, ratio, verdict } from '../lib/format.mjs'

const AUTH = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`

export default {
  id: 8,
  title: 'Policy cost: the 10-rule policy and the TUI, against no policy with --no-tui',
  target: 'policy costs ≤ 15% of req/s; the TUI costs ≤ 10%',
  columns: [
    { key: 'rps', label: 'req/s', fmt: fmt.int },
    { key: 'vsBaseline', label: 'vs baseline', fmt: fmt.pct },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ targets, upstream, profile, log }) {
    const gwHttp = targets.get('gw-http')
    const rows = []
    const features = gwHttp?.available ? await cliFeatures() : { available: false, reason: 'the gw-http path is unavailable' }
    const variants = [
      { path: 'baseline', available: features.available && features.noTui, reason: features.reason ?? 'gw http has no --no-tui yet' },
      { path: 'policy', available: features.available && features.policyFile && features.noTui, reason: features.reason ?? 'gw http has no --policy-file yet' },
      { path: 'tui', available: features.available && features.tui && features.noTui, reason: features.reason ?? 'the Ink UI is not built yet (packages/cli/dist/tui is empty)', tty: true },
    ]
    const dir = mkdtempSync(join(tmpdir(), 'gw-bench-policy-'))
    const policyFile = join(dir, 'policy.yml')
    writeFileSync(policyFile, readFileSync(new URL('../fixtures/policy-10-rules.yml.tmpl', import.meta.url), 'utf8').replaceAll('__UPSTREAM__', upstream.url))
    try {
      for (const [i, v] of variants.entries()) {
        if (!v.available) { rows.push({ path: v.path, unavailable: v.reason }); continue }
        const name = `policy${i}`
        let agent
        try {
          agent = await startCliAgent({
            upstreamUrl: upstream.url,
            relayUrl: `http://127.0.0.1:${gwHttp.port}`,
            name,
            extraArgs: v.path === 'policy' ? ['--policy-file', policyFile] : [],
            tty: v.tty,
          })
          const target = { ...gwHttp, name: v.path, host: `${name}.localhost`, extraHeaders: { authorization: AUTH } }
          await waitRoutable(target)
          log(`  ${v.path}: ${profile.s1Duration} s at 64 connections`)
          const r = await saturate(target, { connections: 64, duration: profile.s1Duration })
          rows.push({ path: v.path, ...r })
        } catch (err) {
          rows.push({ path: v.path, unavailable: err.message.split('\n')[0].slice(0, 200) })
        } finally {
          if (agent) await stopChild(agent.child)
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    const base = rows.find((r) => r.path === 'baseline')
    for (const r of rows) r.vsBaseline = ratio(r.rps, base?.rps)
    const policy = rows.find((r) => r.path === 'policy')
    const tui = rows.find((r) => r.path === 'tui')
    return {
      rows,
      verdicts: [
        verdict('policy costs ≤ 15% of req/s', Number.isFinite(policy?.vsBaseline) ? policy.vsBaseline >= 0.85 : null, Number.isFinite(policy?.vsBaseline) ? `costs ${fmt.pct(1 - policy.vsBaseline)}` : 'unavailable'),
        verdict('TUI costs ≤ 10% of req/s', Number.isFinite(tui?.vsBaseline) ? tui.vsBaseline >= 0.9 : null, Number.isFinite(tui?.vsBaseline) ? `costs ${fmt.pct(1 - tui.vsBaseline)}` : 'unavailable'),
      ],
      notes: ['Every variant sends the policy\'s Basic credentials, so the only difference is the agent\'s configuration.'],
    }
  },
}
