// gw relay --workers 1 vs 2 without Redis (issue 14): time until every worker logged
// "relay started", and requests/s for 4 s (after 1 s of warm-up) from 20 keep-alive
// connections spread over 8 names held by 8 in-process agents (with 2 workers about half
// the requests reach the worker without the agent and are forwarded over the loopback
// relay-to-relay link). Two rounds. Run after `npx tsc -b`:
//   node bench/experiments/workers-ipc.mjs
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { createServer } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent as UAgent, request } from 'undici'
const root = new URL('../../', import.meta.url)
const { startAgent } = await import(new URL('packages/cli/dist/agent/agent.js', root).href)
const BIN = fileURLToPath(new URL('packages/cli/bin/run.js', root))
const TOKEN = 'measure-token-0123456789abcdef'
const upstream = createServer((req, res) => res.end('ok'))
await new Promise((r) => upstream.listen(0, '127.0.0.1', r))
const up = `http://127.0.0.1:${upstream.address().port}`

async function run(workers) {
  const dir = mkdtempSync(join(tmpdir(), 'gw-measure-'))
  const t0 = performance.now()
  const child = spawn(process.execPath, [BIN, 'relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', dir, '--authtoken', TOKEN, '--workers', String(workers), '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const started = []
  await new Promise((resolve) => createInterface({ input: child.stdout }).on('line', (l) => { if (l.includes('"relay started"')) { started.push(JSON.parse(l)); if (started.length === workers) resolve() } }))
  const startMs = performance.now() - t0
  const url = `http://127.0.0.1:${started[0].http_port}`
  const agents = await Promise.all(Array.from({ length: 8 }, (_, i) => startAgent({ relay: url, authtoken: TOKEN, endpoints: [{ upstream: up, publicName: 'm' + i }] })))
  await new Promise((r) => setTimeout(r, 500))
  const pool = new UAgent({ connections: 20 })
  let k = 0
  const go = async (ms) => {
    let n = 0, failed = 0
    const end = performance.now() + ms
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (performance.now() < end) {
        const res = await request(`${url}/x`, { headers: { host: 'm' + (k++ % 8) + '.tunnel.test' }, dispatcher: pool })
        await res.body.text()
        if (res.statusCode === 200) n++; else failed++
      }
    }))
    return { n, failed }
  }
  await go(1000)
  const { n, failed } = await go(4000)
  await pool.close()
  await Promise.all(agents.map((a) => a.close()))
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  rmSync(dir, { recursive: true, force: true })
  return { workers, startMs: Math.round(startMs), rps: Math.round(n / 4), failed }
}
for (let i = 0; i < 2; i++) for (const w of [1, 2]) console.log(JSON.stringify({ ...(await run(w)), load1: loadavg()[0].toFixed(1) }))
upstream.close()
