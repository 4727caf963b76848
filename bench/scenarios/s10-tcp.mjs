// Scenario 10: TCP tunnels (issue 12). An echo upstream (procs/echo-upstream.mjs) on paths
// of its own:
//   direct-tcp  client → the echo server
//   gw-tcp      client → `gw relay --tcp-ports P-P` → `gw tcp <echo port> --relay …` → echo,
//               the CLI as the README runs it (one yamux stream per connection)
//   ssh-R-tcp   client → sshd → (one SSH connection) → `ssh -R` → echo
// Two loads (lib/tcp-clients.mjs), every byte read back compared with what was written:
//   connections/s  8 loops of connect, 16 bytes echoed, close; alternating rounds, medians;
//                  CPU µs per connection by process
//   bulk echo      one connection carrying N bytes each way at once (written and echoed
//                  back); MiB/s each way and CPU ms per MiB by process
import { startSshTunnel, freePort } from '../lib/anchors.mjs'
import { cpuOf, startProc, stopChild } from '../lib/children.mjs'
import { byProcess, fmt, GiB, MiB, ratio, verdict } from '../lib/format.mjs'
import { startCliRelay, startCliTcp } from '../lib/gw-cli.mjs'
import { pathWanted } from '../lib/paths.mjs'
import { runInRounds } from '../lib/rounds.mjs'
import { median } from '../lib/stats.mjs'
import { bulkEcho, connectionsPerSecond, echoOnce } from '../lib/tcp-clients.mjs'

const PARALLEL = 8
const SMALL = 16

async function routable(t, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      await echoOnce('127.0.0.1', t.port, 5)
      return
    } catch (err) {
      last = err.message
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`never echoed: ${last}`)
}

async function startTcpPaths(requested, log, execArgv) {
  const closers = []
  const targets = []
  const close = async () => { for (const c of closers) await c().catch(() => {}) }
  const unavailable = (name, reason) => targets.push({ name, available: false, reason })
  try {
    const echo = await startProc('echo-upstream.mjs')
    closers.push(() => stopChild(echo.child))
    const echoPort = echo.message.port
    targets.push({ name: 'direct-tcp', available: true, port: echoPort, procs: [], upstreamPid: echo.pid })
    const startGw = async () => {
      if (!pathWanted(requested, 'gw-tcp', ['gw-http'])) return
      // The relay's range is one free port, as `--tcp-ports 20000-20100` is on a server.
      const tcpPort = await freePort()
      let relay
      try {
        relay = await startCliRelay({ extraArgs: ['--tcp-ports', `${tcpPort}-${tcpPort}`], execArgv })
      } catch (err) {
        return unavailable('gw-tcp', err.message.split('\n')[0])
      }
      closers.unshift(relay.close)
      try {
        const agent = await startCliTcp({ upstream: `127.0.0.1:${echoPort}`, relayUrl: relay.httpUrl, execArgv })
        closers.unshift(agent.close)
        const port = Number(new URL(agent.url).port)
        targets.push({ name: 'gw-tcp', available: true, port, url: agent.url, procs: [{ role: 'relay', pid: relay.pid }, { role: 'agent', pid: agent.pid }], upstreamPid: echo.pid })
      } catch (err) {
        unavailable('gw-tcp', err.message.split('\n')[0])
      }
    }
    const startSsh = async () => {
      if (!pathWanted(requested, 'ssh-R-tcp', ['ssh-R'])) return
      const a = await startSshTunnel(echoPort).catch((err) => ({ available: false, reason: err.message }))
      if (!a.available) return unavailable('ssh-R-tcp', a.reason)
      closers.unshift(a.close)
      targets.push({ name: 'ssh-R-tcp', available: true, port: a.port, procs: a.procs, upstreamPid: echo.pid })
    }
    await Promise.all([startGw(), startSsh()])
    await Promise.all(targets.filter((t) => t.available).map((t) => routable(t).catch((err) => {
      t.available = false
      t.reason = err.message
    })))
  } catch (err) {
    await close()
    throw err
  }
  for (const t of targets) log(`  path ${t.name}: ${t.available ? `127.0.0.1:${t.port}` : `unavailable (${t.reason})`}`)
  const order = ['direct-tcp', 'gw-tcp', 'ssh-R-tcp']
  return { targets: order.map((n) => targets.find((t) => t.name === n)).filter(Boolean), close }
}

/** {relay: pid, …, upstream: pid} for lib/tcp-clients.mjs. */
const pidsOf = (t) => ({ ...Object.fromEntries(t.procs.map((p) => [p.role, p.pid])), upstream: t.upstreamPid })

export default {
  id: 10,
  name: 'tcp',
  ownPaths: true,
  title: `TCP tunnels: connections/s (${PARALLEL} at a time, ${SMALL} B echoed) and bulk echo on one connection`,
  target: 'no number in the issues (issue 12: a TCP row against direct); every byte echoed back as written',
  columns: [
    { key: 'cps', label: 'connections/s', fmt: fmt.int },
    { key: 'cpsVsDirect', label: 'conn/s vs direct', fmt: fmt.pct },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'cpuPerConnText', label: 'CPU µs/connection by process', fmt: fmt.text },
    { key: 'size', label: 'bulk size', fmt: fmt.mb },
    { key: 'mibps', label: 'bulk each way', fmt: fmt.mibps },
    { key: 'mibpsVsDirect', label: 'bulk vs direct', fmt: fmt.pct },
    { key: 'cpuPerMiBText', label: 'CPU ms/MiB by process', fmt: fmt.text },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ profile, log, requestedPaths, gwExecArgv = [] }) {
    const stack = await startTcpPaths(requestedPaths, log, gwExecArgv)
    try {
      const roles = (t) => [...t.procs.map((p) => p.role), 'upstream']
      // connectionsPerSecond reads each process's CPU itself, per connection.
      const { rows, live } = await runInRounds(stack.targets, (t, seconds) => connectionsPerSecond('127.0.0.1', t.port, { seconds, parallel: PARALLEL, bytes: SMALL, pids: pidsOf(t) }), {
        warmSeconds: profile.s1WarmSeconds, rounds: profile.s10Rounds, seconds: profile.s10Duration / profile.s10Rounds, log, what: 'connections',
      })
      for (const path of live) {
        path.bulk = []
        path.errors = path.runs.reduce((a, r) => a + r.errors, 0)
        path.firstError = path.runs.find((r) => r.firstError !== undefined)?.firstError
      }
      const size = profile.bulkBytes
      for (let round = 0; round < profile.s10BulkRounds; round++) {
        for (const path of live) {
          log(`  ${path.t.name}: bulk, round ${round + 1}/${profile.s10BulkRounds}, ${size / MiB} MiB each way`)
          try {
            path.bulk.push(await bulkEcho('127.0.0.1', path.t.port, size, { pids: pidsOf(path.t) }))
          } catch (err) {
            path.errors++
            path.firstError ??= `bulk: ${err.message}`
          }
        }
      }
      for (const { t, runs, bulk, errors, firstError } of live) {
        const done = runs.reduce((a, r) => a + r.done, 0)
        // CPU per connection over all rounds: each round's per-connection figure weighted by its count.
        const perConn = roles(t).map((k) => runs.reduce((a, r) => a + r.cpuPerConnection[k] * r.done, 0) / (done || NaN))
        const perMiB = roles(t).map((k) => bulk.reduce((a, b) => a + b.cpuPerMiB[k], 0) / (bulk.length || NaN) / 1000)
        rows.push({
          path: t.name,
          cps: median(runs.map((r) => r.perSecond)),
          p50: median(runs.map((r) => r.p50)),
          p99: median(runs.map((r) => r.p99)),
          connections: done,
          rounds: runs.map((r) => ({ perSecond: r.perSecond, p50: r.p50, p99: r.p99 })),
          cpuPerConnection: Object.fromEntries(roles(t).map((k, i) => [k, perConn[i]])),
          cpuPerConnText: byProcess(roles(t).map((role) => ({ role })), perConn),
          size,
          mibps: median(bulk.map((b) => b.mibps)),
          bulkRounds: bulk.map((b) => b.mibps),
          cpuPerMiB: Object.fromEntries(roles(t).map((k, i) => [k, perMiB[i]])),
          cpuPerMiBText: bulk.length ? byProcess(roles(t).map((role) => ({ role })), perMiB, 2) : undefined,
          errors,
          firstError,
        })
      }
      const direct = rows.find((r) => r.path === 'direct-tcp')
      for (const r of rows) {
        r.cpsVsDirect = ratio(r.cps, direct?.cps)
        r.mibpsVsDirect = ratio(r.mibps, direct?.mibps)
      }
      const measured = rows.filter((r) => !r.unavailable)
      const wrong = measured.filter((r) => r.errors > 0 || !(r.connections > 0) || !Number.isFinite(r.mibps))
      const gw = rows.find((r) => r.path === 'gw-tcp')
      const ssh = rows.find((r) => r.path === 'ssh-R-tcp')
      return {
        rows,
        verdicts: [
          verdict('every path echoed every byte as written, on every connection', measured.length > 0 ? wrong.length === 0 : null,
            wrong.length ? wrong.map((r) => `${r.path}: ${r.errors} errors${r.firstError ? `, first: ${r.firstError}` : ''}`).join('; ') : `${measured.length} paths`),
        ],
        notes: [
          `gw-tcp ${fmt.pct(gw?.cpsVsDirect)} of direct's connections/s and ${fmt.x(ratio(gw?.cps, ssh?.cps))} ssh -R; bulk ${fmt.pct(gw?.mibpsVsDirect)} of direct and ${fmt.x(ratio(gw?.mibps, ssh?.mibps))} ssh -R.`,
          ...(size < GiB ? [`${size / MiB} MiB each way per bulk transfer in this profile (1 GiB in the full run).`] : []),
        ],
      }
    } finally {
      await stack.close()
    }
  },
}
