#!/usr/bin/env node
// The two-relay row (docs/scaling.md): one real redis-server, two `gw relay --redis` (the built
// CLI), one `gw http` agent that dialled relay A, and autocannon against
//   direct      the upstream itself
//   relay A     the relay holding the agent (client → relay → agent → upstream)
//   relay B     the other relay (client → relay B → relay A → agent → upstream)
// Also read: Redis commands per request through B and per relay heartbeat (INFO commandstats),
// and the relays' RSS. Run after `npx tsc -b`:
//   node bench/tools/cluster-two-relays.mjs [--seconds 10] [--connections 50]
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:http'
import { createInterface } from 'node:readline'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'packages/cli/bin/run.js')
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? dflt : Number(process.argv[i + 1])
}
const seconds = arg('seconds', 10)
const connections = arg('connections', 50)
const TOKEN = 'bench-cluster-token-0123456789abcdef'
const SECRET = 'bench-cluster-secret-0123456789abcdef'
const dir = mkdtempSync(join(tmpdir(), 'gw-bench-cluster-'))
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

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024
}

/** CPU seconds (user + system) a process has used. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

function redisCalls(port) {
  const out = spawnSync('redis-cli', ['-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' }).stdout
  let calls = 0
  for (const m of out.matchAll(/calls=(\d+)/g)) calls += Number(m[1])
  return calls
}

let pids = {}
async function load(url, host) {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]))
  const result = await autocannon({ url: `${url}/small`, connections, duration: seconds, headers: host ? { host } : {} })
  const requests = result.requests.total
  const cpu = Object.entries(pids).map(([k, pid]) => `${k} ${Math.round(((cpuSeconds(pid) - before[k]) / requests) * 1e6)}`).join(' · ')
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx, cpu }
}

try {
  const body = Buffer.alloc(1024, 'x')
  const upstream = createServer((req, res) => res.end(body))
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r))
  const upstreamPort = upstream.address().port

  const redisPort = 20000 + Math.floor(Math.random() * 20000)
  run('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])
  for (let i = 0; spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' }).stdout.trim() !== 'PONG'; i++) {
    if (i > 100) throw new Error('redis-server did not start')
    await new Promise((r) => setTimeout(r, 50))
  }
  // One process per relay (--workers 1): the rows are relays on machines, CPU counted per relay process.
  const relay = (name) => run(process.execPath, [bin, 'relay', '--workers', '1', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, name), '--authtoken', TOKEN, '--redis', `redis://127.0.0.1:${redisPort}`, '--log-format', 'json'], { GW_RELAY_CLUSTER_SECRET: SECRET })
  const a = relay('a')
  const b = relay('b')
  const portOf = async (r) => JSON.parse(await r.line((l) => l.includes('"relay started"'))).http_port
  const [portA, portB] = [await portOf(a), await portOf(b)]
  const agent = run(process.execPath, [bin, 'http', String(upstreamPort), '--relay', `http://127.0.0.1:${portA}`, '--authtoken', TOKEN, '--url', 'bench', '--no-tui', '--no-inspect', '--log-format', 'json'], { GW_CONFIG: join(dir, 'gw.yml') })
  await agent.line((l) => l.includes('started tunnel'))
  pids = { 'relay A': a.child.pid, 'relay B': b.child.pid, agent: agent.child.pid }

  // Warm up every path (the JIT, and B's lookup of the name).
  for (const port of [upstreamPort, portA, portB]) {
    await autocannon({ url: `http://127.0.0.1:${port}/small`, connections, duration: 2, headers: { host: 'bench.tunnel.test' } })
  }

  const rows = []
  console.log(`machine: load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} at start`)
  rows.push(['direct', await load(`http://127.0.0.1:${upstreamPort}`)])
  rows.push(['relay A (holds the agent)', await load(`http://127.0.0.1:${portA}`, 'bench.tunnel.test')])
  const before = redisCalls(redisPort)
  const t0 = Date.now()
  const through = await load(`http://127.0.0.1:${portB}`, 'bench.tunnel.test')
  const elapsed = (Date.now() - t0) / 1000
  const callsDuringB = redisCalls(redisPort) - before
  rows.push(['relay B (forwards to A)', through])

  // Idle: what two relays and one agent cost Redis with no traffic.
  const idleBefore = redisCalls(redisPort)
  await new Promise((r) => setTimeout(r, 10_000))
  const idlePerSecond = (redisCalls(redisPort) - idleBefore) / 10

  console.log(`| path (1 KiB GET, ${connections} connections, ${seconds} s) | req/s | p50 ms | p99 ms | CPU µs/req by process | errors |`)
  console.log('|---|---|---|---|---|---|')
  for (const [name, r] of rows) console.log(`| ${name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.cpu} | ${r.errors} |`)
  console.log()
  const requestsB = through.rps * seconds
  console.log(`Redis commands during the relay B run: ${callsDuringB} for ~${Math.round(requestsB)} requests in ${elapsed.toFixed(1)} s (${(callsDuringB / requestsB).toFixed(4)} per request; lookups are cached 1 s, so ~${(callsDuringB / elapsed).toFixed(1)} per second)`)
  console.log(`Redis commands idle (2 relays, 1 agent, 1 name): ${idlePerSecond.toFixed(2)} per second`)
  console.log(`RSS: relay A ${rssMiB(a.child.pid).toFixed(1)} MiB, relay B ${rssMiB(b.child.pid).toFixed(1)} MiB`)
  upstream.close()
} finally {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}
