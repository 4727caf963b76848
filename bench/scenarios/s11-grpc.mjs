// Scenario 11: gRPC through the relay (issue 12: "h2c and gRPC to the upstream"). Unary
// calls of gwbench.Echo/Say (1 KiB answered) from a grpc-js client (lib/grpc-client.mjs:
// one channel, 64 calls in flight) to a grpc-js server (procs/grpc-upstream.mjs), over
// TLS on every path, in alternating rounds (scenario 9's method, medians):
//   direct-grpc  the server's TLS port (the per-run CA of lib/certs.mjs)
//   gw-grpc      `gw relay`'s HTTPS port (ALPN h2) → `gw http <h2c port> --upstream-protocol
//                http2`, the README's gRPC command, the CLI as users run it
//   nginx-grpc   nginx `listen … ssl http2` + `grpc_pass grpc://` to the h2c port, keep-alive
//   ssh-R-grpc   `ssh -R` to the server's TLS port: gRPC over TLS end to end
// Every reply is checked: status OK, the message echoed, 1,024 bytes of payload.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startNginx, startSshTunnel } from '../lib/anchors.mjs'
import { makeCa } from '../lib/certs.mjs'
import { startProc, stopChild } from '../lib/children.mjs'
import { fmt, ratio, verdict } from '../lib/format.mjs'
import { startCliHttp, startCliRelay } from '../lib/gw-cli.mjs'
import { grpcOnce, grpcSaturate } from '../lib/grpc-client.mjs'
import { pathWanted } from '../lib/paths.mjs'
import { measureInRounds } from '../lib/rounds.mjs'

const IN_FLIGHT = 64

async function routable(t, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      await grpcOnce(t)
      return
    } catch (err) {
      last = err.message
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`no right answer to a call: ${last}`)
}

async function startGrpcPaths(requested, log, execArgv) {
  const closers = []
  const targets = []
  const close = async () => { for (const c of closers) await c().catch(() => {}) }
  const unavailable = (name, reason) => targets.push({ name, available: false, reason })
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-grpc-'))
  closers.push(async () => rmSync(dir, { recursive: true, force: true }))
  try {
    const certs = makeCa(dir)
    const server = await startProc('grpc-upstream.mjs', [certs.certFile, certs.keyFile])
    closers.unshift(() => stopChild(server.child))
    const { tlsPort, h2cPort } = server.message
    const tls = { ca: certs.caPem, host: 'localhost' }
    targets.push({ name: 'direct-grpc', available: true, ...tls, port: tlsPort, procs: [], upstreamPid: server.pid })
    const startGw = async () => {
      if (!pathWanted(requested, 'gw-grpc', ['gw-https'])) return
      try {
        const relay = await startCliRelay({ execArgv })
        closers.unshift(relay.close)
        if (!relay.httpsPort) return unavailable('gw-grpc', 'the relay reported no https port')
        const agent = await startCliHttp({ upstreamUrl: `http://127.0.0.1:${h2cPort}`, relayUrl: relay.httpUrl, name: 'benchgrpc', extraArgs: ['--upstream-protocol', 'http2'], execArgv })
        closers.unshift(agent.close)
        targets.push({
          name: 'gw-grpc', available: true, ca: relay.caCertPem, host: 'benchgrpc.localhost', port: relay.httpsPort, upstreamPid: server.pid,
          procs: [{ role: 'relay', pid: relay.pid, child: relay.child }, { role: 'agent', pid: agent.pid, child: agent.child }],
        })
      } catch (err) {
        unavailable('gw-grpc', err.message.split('\n')[0])
      }
    }
    const startAnchor = async (name, family, start) => {
      if (!pathWanted(requested, name, [family])) return
      const a = await start().catch((err) => ({ available: false, reason: err.message }))
      if (!a.available) return unavailable(name, a.reason)
      closers.unshift(a.close)
      targets.push({ name, available: true, ...tls, port: a.port, procs: a.procs, upstreamPid: server.pid })
    }
    await Promise.all([
      startGw(),
      startAnchor('nginx-grpc', 'nginx', () => startNginx(h2cPort, { h2: certs, grpc: true })),
      startAnchor('ssh-R-grpc', 'ssh-R', () => startSshTunnel(tlsPort)),
    ])
    await Promise.all(targets.filter((t) => t.available).map((t) => routable(t).catch((err) => {
      t.available = false
      t.reason = err.message
    })))
  } catch (err) {
    await close()
    throw err
  }
  for (const t of targets) log(`  path ${t.name}: ${t.available ? `127.0.0.1:${t.port} :authority ${t.host}` : `unavailable (${t.reason})`}`)
  const order = ['direct-grpc', 'gw-grpc', 'nginx-grpc', 'ssh-R-grpc']
  return { targets: order.map((n) => targets.find((t) => t.name === n)).filter(Boolean), close }
}

export default {
  id: 11,
  name: 'grpc',
  ownPaths: true,
  title: `gRPC unary calls (1 KiB answers) from grpc-js, one channel, ${IN_FLIGHT} calls in flight`,
  target: 'no number in the issues (issue 12: gRPC end to end through the relay); every call answered right (OK, message and 1 KiB back)',
  columns: [
    { key: 'rps', label: 'calls/s', fmt: fmt.int },
    { key: 'rpsVsDirect', label: 'calls/s vs direct', fmt: fmt.pct },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'cpuPerReq', label: 'tunnel CPU/call', fmt: fmt.us },
    { key: 'cpuByProcessText', label: 'CPU µs/call by process', fmt: fmt.text },
    { key: 'upstreamCpuPerReq', label: 'server CPU/call', fmt: fmt.us },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ profile, log, requestedPaths, gwExecArgv = [], profileDir }) {
    const stack = await startGrpcPaths(requestedPaths, log, gwExecArgv)
    try {
      const rows = await measureInRounds(stack.targets, (t, duration) => grpcSaturate(t, { inFlight: IN_FLIGHT, duration }), {
        warmSeconds: profile.s1WarmSeconds, rounds: profile.s9Rounds, seconds: profile.s9Duration / profile.s9Rounds, log, profileDir, tag: 's11',
      })
      const direct = rows.find((r) => r.path === 'direct-grpc')
      for (const r of rows) r.rpsVsDirect = ratio(r.rps, direct?.rps)
      const measured = rows.filter((r) => !r.unavailable)
      const wrong = measured.filter((r) => r.errors > 0 || !(r.ok > 0))
      const gw = rows.find((r) => r.path === 'gw-grpc')
      const nginx = rows.find((r) => r.path === 'nginx-grpc')
      const ssh = rows.find((r) => r.path === 'ssh-R-grpc')
      return {
        rows,
        verdicts: [
          verdict('every path answered every call right (OK, the message and 1 KiB back)', measured.length > 0 ? wrong.length === 0 : null,
            wrong.length ? wrong.map((r) => `${r.path}: ${r.errors} errors${r.firstError ? `, first: ${r.firstError}` : ''}`).join('; ') : `${measured.length} paths`),
        ],
        notes: [`gw-grpc ${fmt.pct(gw?.rpsVsDirect)} of direct's calls/s, ${fmt.x(ratio(gw?.rps, nginx?.rps))} nginx-grpc, ${fmt.x(ratio(gw?.rps, ssh?.rps))} ssh -R.`],
      }
    } finally {
      await stack.close()
    }
  },
}
