#!/usr/bin/env node
// The two-relay row for tcp endpoints (docs/scaling.md): one real redis-server, two
// `gw relay --redis --tcp-ports` (the built CLI) on 127.0.0.1 (A) and 127.0.0.2 (B), so
// both can listen on one port number as two machines would, one `gw tcp` agent that
// dialled relay A, an echo upstream, and for each path
//   direct      the upstream itself
//   relay A     the relay holding the agent (client → relay → agent → upstream)
//   relay B     the other relay (client → relay B → relay A → agent → upstream)
// two loads: connections per second (connect, 16 bytes echoed, close; --parallel at a
// time) and bulk throughput (--mib MiB written and echoed back on one connection).
// Also read: Redis commands per connection through B, and CPU per connection by process.
// Run after `npx tsc -b`:
//   node bench/tools/cluster-tcp.mjs [--seconds 5] [--parallel 8] [--mib 64]
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bulkEcho, connectionsPerSecond, echoOnce } from '../lib/tcp-clients.mjs'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'packages/cli/bin/run.js')
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? dflt : Number(process.argv[i + 1])
}
const seconds = arg('seconds', 5)
const parallel = arg('parallel', 8)
const mib = arg('mib', 64)
const TOKEN = 'bench-cluster-tcp-token-0123456789abcdef'
const SECRET = 'bench-cluster-tcp-secret-0123456789abcdef'
const dir = mkdtempSync(join(tmpdir(), 'gw-bench-cluster-tcp-'))
const children = []

function run(cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  const lines = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l)
    for (const w of [...waiters]) if (w.test(l)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l) }
  })
  child.stderr.on('data', () => {})
  return {
    child,
    line: (test) => new Promise((resolve, reject) => {
      const found = lines.find(test)
      if (found) return resolve(found)
      const timer = setTimeout(() => reject(new Error(`no such line from ${cmd} ${args.slice(0, 2).join(' ')}:\n${lines.join('\n')}`)), 60_000)
      waiters.push({ test, resolve: (l) => { clearTimeout(timer); resolve(l) } })
    }),
  }
}

function redisCalls(port) {
  const out = spawnSync('redis-cli', ['-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' }).stdout
  let calls = 0
  for (const m of out.matchAll(/calls=(\d+)/g)) calls += Number(m[1])
  return calls
}

let pids = {}
let firstError
const cpuText = (perConnection) => Object.entries(perConnection).map(([k, us]) => `${k} ${Math.round(us)}`).join(' · ')
async function cps(host, port) {
  const r = await connectionsPerSecond(host, port, { seconds, parallel, bytes: 16, pids })
  firstError ??= r.firstError
  return { ...r, cpu: cpuText(r.cpuPerConnection) }
}

async function bulk(host, port) {
  const { seconds: s } = await bulkEcho(host, port, mib * 1024 * 1024)
  return (mib * 2) / s
}

try {
  const upstream = createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.pipe(s) })
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r))
  const upstreamPort = upstream.address().port
  const tcpPort = 20000 + Math.floor(Math.random() * 10000)

  const redisPort = 30000 + Math.floor(Math.random() * 2000)
  run('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])
  for (let i = 0; spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' }).stdout.trim() !== 'PONG'; i++) {
    if (i > 100) throw new Error('redis-server did not start')
    await new Promise((r) => setTimeout(r, 50))
  }
  // One process per relay (--workers 1): relays on machines, CPU counted per relay process.
  const relay = (name, host) => run(process.execPath, [bin, 'relay', '--workers', '1', '--domain', 'localhost', '--host', host, '--http-port', '0', '--https-port', '-1', '--tcp-ports', `${tcpPort}-${tcpPort}`,
    '--state-dir', join(dir, name), '--authtoken', TOKEN, '--redis', `redis://127.0.0.1:${redisPort}`, '--log-format', 'json'], { GW_RELAY_CLUSTER_SECRET: SECRET })
  const a = relay('a', '127.0.0.1')
  const b = relay('b', '127.0.0.2')
  const portOf = async (r) => JSON.parse(await r.line((l) => l.includes('"relay started"'))).http_port
  const portA = await portOf(a)
  await portOf(b)
  const agent = run(process.execPath, [bin, 'tcp', String(upstreamPort), '--relay', `http://127.0.0.1:${portA}`, '--authtoken', TOKEN, '--remote-addr', `localhost:${tcpPort}`,
    '--no-tui', '--no-inspect', '--log-format', 'json', '--config', join(dir, 'gw.yml')])
  await agent.line((l) => l.includes('started tunnel'))
  pids = { 'relay A': a.child.pid, 'relay B': b.child.pid, agent: agent.child.pid }
  // Relay B listens once told of the port.
  for (let i = 0; ; i++) {
    try {
      await echoOnce('127.0.0.2', tcpPort, 5)
      break
    } catch (err) {
      if (i > 100) throw err
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const paths = [['direct', '127.0.0.1', upstreamPort], ['relay A (holds the agent)', '127.0.0.1', tcpPort], ['relay B (forwards to A)', '127.0.0.2', tcpPort]]
  for (const [, host, port] of paths) await cps(host, port) // warm-up

  console.log(`machine: load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} at start`)
  console.log(`| path | connections/s (${parallel} at a time, 16 B echoed) | p50 ms | CPU µs/connection by process | errors | echo MiB/s (${mib} MiB each way, one connection) |`)
  console.log('|---|---|---|---|---|---|')
  let redisPerConnection = ''
  for (const [name, host, port] of paths) {
    const before = redisCalls(redisPort)
    const t0 = Date.now()
    const r = await cps(host, port)
    const calls = redisCalls(redisPort) - before
    if (name.startsWith('relay B')) redisPerConnection = `Redis commands during the relay B run: ${calls} for ${r.done} connections in ${((Date.now() - t0) / 1000).toFixed(1)} s (lookups cached 1 s; heartbeats included)`
    const throughput = await bulk(host, port)
    console.log(`| ${name} | ${Math.round(r.perSecond)} | ${r.p50.toFixed(2)} | ${r.cpu} | ${r.errors} | ${throughput.toFixed(0)} |`)
  }
  console.log()
  console.log(redisPerConnection)
  if (firstError) console.log(`first error: ${firstError}`)
  upstream.close()
} finally {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}
