// Scenario 1: saturation with small requests. autocannon, 1 KiB GET, 64 connections.
// The figure that matters is req/s as a fraction of direct: a tunnelled request crosses
// three processes where a direct one crosses one.
import { saturate } from '../lib/http-clients.mjs'
import { fmt, ratio, verdict } from '../lib/format.mjs'
import { measureInRounds } from '../lib/rounds.mjs'


export default {
  id: 1,
  title: 'Small requests: 1 KiB GET, 64 connections',
  target: 'gw-http (the CLI, capture and request log on) ≥ 25% of direct and ≥ 2× ssh -R; capture + log cost ≤ 10% of gw-bare\'s req/s',
  columns: [
    { key: 'rps', label: 'req/s', fmt: fmt.int },
    { key: 'rpsVsDirect', label: 'req/s vs direct', fmt: fmt.pct },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'p50VsDirect', label: 'p50 vs direct', fmt: fmt.x },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'p99VsDirect', label: 'p99 vs direct', fmt: fmt.x },
    { key: 'cpuPerReq', label: 'tunnel CPU/req', fmt: fmt.us },
    { key: 'cpuByProcessText', label: 'CPU µs/req by process', fmt: fmt.text },
    { key: 'upstreamCpuPerReq', label: 'upstream CPU/req', fmt: fmt.us },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ targets, upstream, profile, log, profileDir }) {
    const rows = await measureInRounds(targets.values(), (t, duration) => saturate(t, { connections: 64, duration }), {
      warmSeconds: profile.s1WarmSeconds, rounds: profile.s1Rounds, seconds: profile.s1Duration / profile.s1Rounds, log, profileDir, tag: 's1',
      what: '64 connections', upstreamPid: () => upstream.pid,
    })
    const direct = rows.find((r) => r.path === 'direct')
    for (const r of rows) {
      r.rpsVsDirect = ratio(r.rps, direct?.rps)
      r.p50VsDirect = ratio(r.p50, direct?.p50)
      r.p99VsDirect = ratio(r.p99, direct?.p99)
    }
    const gw = rows.find((r) => r.path === 'gw-http')
    const bare = rows.find((r) => r.path === 'gw-bare')
    const ssh = rows.find((r) => r.path === 'ssh-R')
    const lt = rows.find((r) => r.path === 'localtunnel')
    const vsSsh = ratio(gw?.rps, ssh?.rps)
    const vsBare = ratio(gw?.rps, bare?.rps)
    const vsLt = ratio(gw?.rps, lt?.rps)
    return {
      rows,
      verdicts: [
        verdict('gw-http req/s ≥ 25% of direct', Number.isFinite(gw?.rpsVsDirect) ? gw.rpsVsDirect >= 0.25 : null, `${fmt.pct(gw?.rpsVsDirect)} of direct`),
        verdict('gw-http req/s ≥ 2× ssh -R', Number.isFinite(vsSsh) ? vsSsh >= 2 : null, `${fmt.x(vsSsh)} ssh -R; ${fmt.x(vsLt)} localtunnel`),
        verdict('capture and request log cost ≤ 10% of req/s (gw-http against gw-bare)', Number.isFinite(vsBare) ? vsBare >= 0.9 : null,
          `gw-http ${fmt.pct(vsBare)} of gw-bare's req/s; agent ${fmt.us(gw?.cpuPerReqByProcess?.agent)} against ${fmt.us(bare?.cpuPerReqByProcess?.agent)} per request`),
      ],
    }
  },
}
