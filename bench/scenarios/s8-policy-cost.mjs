// Scenario 8: what the gateway features cost on scenario 1's load. Agents as users run
// them (`gw http`), each on its own name at the shared relay, measured back to back:
//   baseline     --no-tui --log-level warn, no policy
//   policy       the same with the 10-rule policy of the gateway issue
//   tui          the Ink UI on a real terminal (script(1)), no policy
//   request-log  --no-tui at the default level: one JSON log line per request to a pipe
// Baseline and policy run at warn level so that the policy figure is the engine's cost,
// not the log line each request otherwise writes; request-log shows that line's cost.
// Targets come from the gateway issue (policy ≤ 15% of req/s) and the live-traffic issue
// (TUI ≤ 10%).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readFileSync as readProc } from 'node:fs'
import { cpuOf, stopChild } from '../lib/children.mjs'
import { cliFeatures, startCliAgent } from '../lib/cli-agent.mjs'
import { saturate } from '../lib/http-clients.mjs'
import { waitRoutable } from '../lib/paths.mjs'
import { fmt, ratio, verdict } from '../lib/format.mjs'
import { median } from '../lib/stats.mjs'

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
    { key: 'agentCpu', label: 'agent CPU/req', fmt: fmt.us },
    { key: 'cpuVsBaseline', label: 'CPU vs baseline', fmt: fmt.pct },
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
      { path: 'request-log', available: features.available && features.noTui, reason: features.reason ?? 'gw http has no --no-tui yet', info: true },
    ].filter((v) => profile.name !== 'smoke' || v.path !== 'request-log') // one CLI start-up fewer
    const dir = mkdtempSync(join(tmpdir(), 'gw-bench-policy-'))
    const policyFile = join(dir, 'policy.yml')
    writeFileSync(policyFile, readFileSync(new URL('../fixtures/policy-10-rules.yml.tmpl', import.meta.url), 'utf8').replaceAll('__UPSTREAM__', upstream.url))
    // All agents run at once and are measured in alternating rounds, medians kept: a fresh
    // agent is cold, and load from elsewhere on the machine then hits every variant alike.
    const running = []
    try {
      // Started together: each is an oclif start-up of a second or more on a busy machine.
      await Promise.all(variants.map(async (v, i) => {
        if (!v.available) return
        const name = `policy${i}`
        try {
          const agent = await startCliAgent({
            upstreamUrl: upstream.url,
            relayUrl: `http://127.0.0.1:${gwHttp.port}`,
            name,
            extraArgs: [
              ...(v.path === 'policy' ? ['--policy-file', policyFile] : []),
              ...(v.tty || v.info ? [] : ['--log-level', 'warn']),
            ],
            tty: v.tty,
          })
          const entry = { v, agent, runs: [] }
          running.push(entry)
          const target = { ...gwHttp, name: v.path, host: `${name}.localhost`, extraHeaders: { authorization: AUTH } }
          await waitRoutable(target)
          // Under script(1) the agent is script's child; its CPU is what the UI costs.
          Object.assign(entry, { target, pid: v.tty ? childOf(agent.pid) ?? agent.pid : agent.pid })
        } catch (err) {
          v.failed = err.message.split('\n')[0].slice(0, 200)
        }
      }))
      if (profile.name !== 'smoke') {
        for (const r of running) if (r.target) await saturate(r.target, { connections: 64, duration: 1 })
      }
      const rounds = profile.name === 'smoke' ? 1 : profile.name === 'quick' ? 2 : 3
      for (let round = 0; round < rounds; round++) {
        for (const r of running) {
          if (!r.target) continue
          log(`  ${r.v.path}: round ${round + 1}/${rounds}, ${profile.s1Duration / rounds} s at 64 connections`)
          const cpuBefore = cpuOf(r.pid)
          const res = await saturate(r.target, { connections: 64, duration: profile.s1Duration / rounds })
          r.runs.push({ ...res, agentCpu: (cpuOf(r.pid) - cpuBefore) / (res.ok || NaN) })
        }
      }
    } finally {
      for (const r of running) await stopChild(r.agent.child)
      rmSync(dir, { recursive: true, force: true })
    }
    for (const v of variants) {
      const r = running.find((x) => x.v === v)
      if (!v.available) rows.push({ path: v.path, unavailable: v.reason })
      else if (!r?.runs?.length) rows.push({ path: v.path, unavailable: v.failed ?? 'did not start' })
      else {
        const med = (key) => median(r.runs.map((x) => x[key]))
        rows.push({ path: v.path, rps: med('rps'), p50: med('p50'), p99: med('p99'), agentCpu: med('agentCpu'), errors: r.runs.reduce((a, x) => a + x.errors, 0), runs: r.runs })
      }
    }
    const base = rows.find((r) => r.path === 'baseline')
    for (const r of rows) {
      r.vsBaseline = ratio(r.rps, base?.rps)
      r.cpuVsBaseline = ratio(r.agentCpu, base?.agentCpu)
    }
    const policy = rows.find((r) => r.path === 'policy')
    const tui = rows.find((r) => r.path === 'tui')
    const requestLog = rows.find((r) => r.path === 'request-log')
    return {
      rows,
      verdicts: [
        verdict('policy costs ≤ 15% of req/s', Number.isFinite(policy?.vsBaseline) ? policy.vsBaseline >= 0.85 : null,
          Number.isFinite(policy?.vsBaseline) ? `costs ${fmt.pct(1 - policy.vsBaseline)} of req/s; agent CPU per request ${fmt.pct(policy.cpuVsBaseline)} of baseline` : 'unavailable'),
        verdict('TUI costs ≤ 10% of req/s', Number.isFinite(tui?.vsBaseline) ? tui.vsBaseline >= 0.9 : null,
          Number.isFinite(tui?.vsBaseline) ? `costs ${fmt.pct(1 - tui.vsBaseline)} of req/s; agent CPU per request ${fmt.pct(tui.cpuVsBaseline)} of baseline` : 'unavailable'),
      ],
      notes: [
        'Every variant sends the policy\'s Basic credentials, so the only difference is the agent\'s configuration.',
        ...(Number.isFinite(requestLog?.vsBaseline) ? [`--no-tui at the default log level writes a line per request: ${fmt.pct(requestLog.vsBaseline)} of baseline req/s here.`] : []),
      ],
    }
  },
}

/** The first child process of `pid` (Linux /proc), or undefined. */
function childOf(pid) {
  try {
    const first = readProc(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]
    return first ? Number(first) : undefined
  } catch {
    return undefined
  }
}
