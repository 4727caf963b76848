// Scenario 9: HTTP/2 at the relay's edge (issue 12). Small requests (1 KiB GET) from an
// HTTP/2 client (lib/h2-client.mjs: 4 connections × 16 streams in flight, 64 requests at
// once as in scenario 1) on paths of its own, in alternating rounds, medians:
//   direct-h2          h2 over TLS straight to an HTTP/2 upstream (procs/h2-upstream.mjs)
//   gw-h2              h2 over TLS to `gw relay`'s HTTPS port (ALPN h2) → `gw http <upstream>`,
//                      the CLI as the README runs it, HTTP/1.1 to the upstream (its default)
//   gw-h2-upstream-h2  the same relay → `gw http <h2c upstream> --upstream-protocol http2`:
//                      HTTP/2 on both sides, the shape a gRPC service has
//   nginx-h2           nginx `listen … ssl http2` → keep-alive HTTP/1.1 to the upstream
//   ssh-R-h2           `ssh -R` forwarding to the HTTP/2 upstream's TLS port: h2 end to end
//                      inside the SSH connection
//   gw-https-h1        gw-h2's relay and agent, on the same HTTPS port over HTTP/1.1 with
//                      scenario 1's client (autocannon, 64 connections): a different client, so
//                      its req/s is not a ratio to read; its CPU per request in the relay and
//                      the agent is what the h2 edge is compared with, in the same rounds
// Every response is checked (200, 1,024 bytes) and every connection must have chosen h2.
// Certificates: a per-run CA made by openssl (lib/certs.mjs) for the upstream and nginx;
// the relay's own generated CA for gw.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startNginx, startSshTunnel } from '../lib/anchors.mjs'
import { makeCa } from '../lib/certs.mjs'
import { startProc, stopChild } from '../lib/children.mjs'
import { fmt, ratio, verdict } from '../lib/format.mjs'
import { startCliHttp, startCliRelay } from '../lib/gw-cli.mjs'
import { h2Get, h2Saturate } from '../lib/h2-client.mjs'
import { request, saturate } from '../lib/http-clients.mjs'
import { pathWanted } from '../lib/paths.mjs'
import { measureInRounds } from '../lib/rounds.mjs'

const CONNECTIONS = 4
const STREAMS = 16

/** Poll a GET /small until it answers 200 over h2 (HTTP/1.1 for the h1 row). */
async function routable(target, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const r = target.h1
        ? { ...(await request(asH1(target), { path: '/small', timeoutMs: 3000 })), alpn: 'h2' }
        : await h2Get(target)
      if (r.status === 200 && r.alpn === (target.tls ? 'h2' : 'h2c')) return
      last = `status ${r.status}, protocol ${r.alpn}`
    } catch (err) {
      last = err.message
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`never answered 200 over h2: ${last}`)
}

/** The h1 row in lib/http-clients.mjs's shape. */
const asH1 = (t) => ({ protocol: 'https', port: t.port, host: t.host, ca: t.ca })

/** Start this scenario's paths; each that cannot start is a row with the reason. */
async function startH2Paths(upstream, requested, log, execArgv) {
  const closers = []
  const targets = []
  const unavailable = (name, reason) => targets.push({ name, available: false, reason })
  const close = async () => { for (const c of closers) await c().catch(() => {}) }
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-h2-'))
  closers.push(async () => rmSync(dir, { recursive: true, force: true }))
  try {
    await startAll()
  } catch (err) {
    await close()
    throw err
  }
  const order = ['direct-h2', 'gw-h2', 'gw-h2-upstream-h2', 'nginx-h2', 'ssh-R-h2', 'gw-https-h1']
  for (const t of targets) log(`  path ${t.name}: ${t.available ? `127.0.0.1:${t.port} :authority ${t.host}` : `unavailable (${t.reason})`}`)
  return { targets: order.map((n) => targets.find((t) => t.name === n)).filter(Boolean), close }

  async function startAll() {
    const certs = makeCa(dir)
    const h2up = await startProc('h2-upstream.mjs', [certs.certFile, certs.keyFile])
    closers.unshift(() => stopChild(h2up.child))
    const h2Tls = { tls: true, ca: certs.caPem, host: 'localhost' }
    targets.push({ name: 'direct-h2', available: true, ...h2Tls, port: h2up.message.tlsPort, procs: [], upstreamPid: h2up.pid })

    const wantGw = ['gw-h2', 'gw-h2-upstream-h2', 'gw-https-h1'].some((n) => pathWanted(requested, n, ['gw-https']))
    const startGw = async () => {
      if (!wantGw) return
      let relay
      try {
        relay = await startCliRelay({ execArgv })
      } catch (err) {
        for (const n of ['gw-h2', 'gw-h2-upstream-h2', 'gw-https-h1']) unavailable(n, err.message.split('\n')[0])
        return
      }
      closers.unshift(relay.close)
      if (!relay.httpsPort) {
        for (const n of ['gw-h2', 'gw-h2-upstream-h2', 'gw-https-h1']) unavailable(n, 'the relay reported no https port')
        return
      }
      const gwTarget = (name, agent, upstreamPid) => ({
        name, available: true, tls: true, ca: relay.caCertPem, host: `${name === 'gw-h2' ? 'benchh2' : 'benchh2up'}.localhost`, port: relay.httpsPort,
        procs: [{ role: 'relay', pid: relay.pid, child: relay.child }, { role: 'agent', pid: agent.pid, child: agent.child }], upstreamPid,
      })
      const agents = [
        ['gw-h2', 'benchh2', upstream.url, [], upstream.pid],
        ['gw-h2-upstream-h2', 'benchh2up', `http://127.0.0.1:${h2up.message.h2cPort}`, ['--upstream-protocol', 'http2'], h2up.pid],
      ]
      await Promise.all(agents.map(async ([name, sub, url, extraArgs, upstreamPid]) => {
        const wanted = pathWanted(requested, name, ['gw-https'])
        const h1 = name === 'gw-h2' && pathWanted(requested, 'gw-https-h1', ['gw-https'])
        if (!wanted && !h1) return
        try {
          const agent = await startCliHttp({ upstreamUrl: url, relayUrl: relay.httpUrl, name: sub, extraArgs, execArgv })
          closers.unshift(agent.close)
          if (wanted) targets.push(gwTarget(name, agent, upstreamPid))
          if (h1) {
            targets.push({ ...gwTarget(name, agent, upstreamPid), name: 'gw-https-h1', h1: true })
          }
        } catch (err) {
          unavailable(name, err.message.split('\n')[0])
        }
      }))
    }
    const startAnchor = async (name, family, start, upstreamPid) => {
      if (!pathWanted(requested, name, [family])) return
      const a = await start().catch((err) => ({ available: false, reason: err.message }))
      if (!a.available) return unavailable(name, a.reason)
      closers.unshift(a.close)
      targets.push({ name, available: true, ...h2Tls, port: a.port, procs: a.procs, upstreamPid })
    }
    await Promise.all([
      startGw(),
      startAnchor('nginx-h2', 'nginx', () => startNginx(upstream.port, { h2: certs }), upstream.pid),
      startAnchor('ssh-R-h2', 'ssh-R', () => startSshTunnel(h2up.message.tlsPort), h2up.pid),
    ])
    await Promise.all(targets.filter((t) => t.available).map((t) => routable(t).catch((err) => {
      t.available = false
      t.reason = err.message
    })))
  }
}

export default {
  id: 9,
  name: 'h2',
  ownPaths: true,
  title: `HTTP/2 small requests: 1 KiB GET over h2 (TLS, ALPN), ${CONNECTIONS} connections × ${STREAMS} streams`,
  target: 'no number in the issues (issue 12: an HTTP/2 row against direct); every path answers every request over h2, 200 and 1 KiB',
  columns: [
    { key: 'rps', label: 'req/s', fmt: fmt.int },
    { key: 'rpsVsDirect', label: 'req/s vs direct-h2', fmt: fmt.pct },
    { key: 'p50', label: 'p50', fmt: fmt.ms },
    { key: 'p50VsDirect', label: 'p50 vs direct-h2', fmt: fmt.x },
    { key: 'p99', label: 'p99', fmt: fmt.ms },
    { key: 'p99VsDirect', label: 'p99 vs direct-h2', fmt: fmt.x },
    { key: 'cpuPerReq', label: 'tunnel CPU/req', fmt: fmt.us },
    { key: 'cpuByProcessText', label: 'CPU µs/req by process', fmt: fmt.text },
    { key: 'upstreamCpuPerReq', label: 'upstream CPU/req', fmt: fmt.us },
    { key: 'alpn', label: 'protocol', fmt: fmt.text },
    { key: 'errors', label: 'errors', fmt: fmt.int },
  ],
  async run({ upstream, profile, log, requestedPaths, gwExecArgv = [], profileDir }) {
    // --cpu-prof: gwExecArgv makes the relay and agents write V8 CPU profiles when they exit.
    const stack = await startH2Paths(upstream, requestedPaths, log, gwExecArgv)
    try {
      const load = async (t, duration) => (t.h1
        ? { ...(await saturate(asH1(t), { connections: CONNECTIONS * STREAMS, duration })), alpn: 'http/1.1' }
        : h2Saturate(t, { connections: CONNECTIONS, streams: STREAMS, duration }))
      const rows = await measureInRounds(stack.targets, load, {
        warmSeconds: profile.s1WarmSeconds, rounds: profile.s9Rounds, seconds: profile.s9Duration / profile.s9Rounds, log, profileDir, tag: 's9',
      })
      const direct = rows.find((r) => r.path === 'direct-h2')
      for (const r of rows.filter((x) => x.path !== 'gw-https-h1')) {
        r.rpsVsDirect = ratio(r.rps, direct?.rps)
        r.p50VsDirect = ratio(r.p50, direct?.p50)
        r.p99VsDirect = ratio(r.p99, direct?.p99)
      }
      const measured = rows.filter((r) => !r.unavailable)
      const wrong = measured.filter((r) => r.errors > 0 || r.alpn !== (r.path === 'gw-https-h1' ? 'http/1.1' : 'h2') || !(r.ok > 0))
      const gw = rows.find((r) => r.path === 'gw-h2')
      const gwH2 = rows.find((r) => r.path === 'gw-h2-upstream-h2')
      const nginx = rows.find((r) => r.path === 'nginx-h2')
      const ssh = rows.find((r) => r.path === 'ssh-R-h2')
      const h1 = rows.find((r) => r.path === 'gw-https-h1')
      return {
        rows,
        verdicts: [
          verdict('every path answered every request right (200, 1 KiB) over h2 by ALPN (gw-https-h1: HTTP/1.1)', measured.length > 0 ? wrong.length === 0 : null,
            wrong.length ? wrong.map((r) => `${r.path}: ${r.errors} errors, protocol ${r.alpn}${r.firstError ? `, first: ${r.firstError}` : ''}`).join('; ') : `${measured.length} paths`),
        ],
        notes: [
          `gw-h2 ${fmt.pct(gw?.rpsVsDirect)} of direct-h2's req/s, ${fmt.x(ratio(gw?.rps, nginx?.rps))} nginx-h2, ${fmt.x(ratio(gw?.rps, ssh?.rps))} ssh -R; gw-h2-upstream-h2 ${fmt.pct(gwH2?.rpsVsDirect)} of direct-h2.`,
          `The same relay and agent over HTTP/1.1 (gw-https-h1, autocannon: its req/s is another client's, not a ratio): relay ${fmt.us(h1?.cpuPerReqByProcess?.relay)} and agent ${fmt.us(h1?.cpuPerReqByProcess?.agent)} per request, against ${fmt.us(gw?.cpuPerReqByProcess?.relay)} and ${fmt.us(gw?.cpuPerReqByProcess?.agent)} over h2.`,
        ],
      }
    } finally {
      await stack.close()
    }
  },
}
