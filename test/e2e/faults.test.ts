/**
 * Faults, each counting what was lost (issue 10): kill -9 of the upstream, the agent or
 * the relay in the middle of a request, an upload and a download, and SIGSTOP of the
 * agent and of the relay. Every piece is a real process: `gw relay`, `gw http`, and an
 * upstream in its own Node process, so a signal hits exactly one of them.
 *
 * What must hold afterwards: every client got a response or a clean error, never a hang
 * (each wait is bounded); the relay's open streams return to 0 (its own metrics say so);
 * its RSS returns near its baseline; and once the dead part is back, the same URL serves.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { freePort, spawnGw, spawnRelay, tempDir, waitFor, type Spawned } from '../helpers/stack.js'

const TOKEN = 'faults-token-0123456789abcdef'
const BOUND = 20_000

// The upstream, in its own process: /slow never answers by itself, /download streams
// forever, /upload reads its body slowly, anything else answers at once. It prints
// "listening <port>" and a line for every request that closed before its end.
const UPSTREAM = `
const http = require('node:http')
const server = http.createServer((req, res) => {
  req.on('close', () => { if (!res.writableFinished) console.log('closed ' + req.url) })
  if (req.url === '/slow') return console.log('arrived /slow')
  if (req.url === '/download') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    console.log('arrived /download')
    const tick = setInterval(() => res.write(Buffer.alloc(16384, 97)), 20)
    res.on('close', () => clearInterval(tick))
    return
  }
  if (req.url === '/upload') {
    console.log('arrived /upload')
    req.on('data', () => {})
    req.on('end', () => res.end('uploaded'))
    return
  }
  res.end('ok')
})
server.listen(Number(process.argv[1] || 0), '127.0.0.1', () => console.log('listening ' + server.address().port))
`

interface Upstream { child: ChildProcess; port: number; lines: string[]; waitFor(line: string): Promise<void> }

async function startUpstream(port = 0): Promise<Upstream> {
  const child = spawn(process.execPath, ['-e', UPSTREAM, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l))
  await waitFor(() => lines.some((l) => l.startsWith('listening ')), BOUND, 'the upstream to listen')
  return {
    child,
    port: Number(lines.find((l) => l.startsWith('listening '))!.split(' ')[1]),
    lines,
    waitFor: (line) => waitFor(() => lines.includes(line), BOUND, line),
  }
}

function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGKILL')
  return exited
}

/** How a request ended, within the bound: its status and whole body, or a clean error. */
async function outcome(p: Promise<{ statusCode: number; headers: Record<string, unknown>; body: Readable & { text(): Promise<string> } }>): Promise<string> {
  const timer = new Promise<string>((resolve) => setTimeout(() => resolve('HANG'), BOUND).unref())
  const result = p.then(
    async (res) => {
      try {
        await res.body.text()
        return `${res.statusCode} ${String(res.headers['gw-error-code'] ?? '')}`.trim()
      } catch (err) {
        return `${res.statusCode} then body error ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      }
    },
    (err: NodeJS.ErrnoException) => `error ${err.code ?? err.message}`,
  )
  return Promise.race([result, timer])
}

describe('faults lose nothing', () => {
  const dir = tempDir('gw-faults-')
  let relayPort: number
  let metricsPort: number
  let relay: Spawned
  let agent: Spawned
  let upstream: Upstream
  const host = (): string => `faulty.tunnel.test:${relayPort}`
  const url = (path: string): string => `http://127.0.0.1:${relayPort}${path}`

  const startRelay = async (): Promise<Spawned> => {
    // One relay process (--workers 1): SIGSTOP of "the relay" must stop the process that serves
    // (with workers it stops only the primary), and the 502 codes are a lone relay's (a
    // request forwarded between workers whose agent vanishes gets GW_ERR_MUX_STREAM_RESET).
    return spawnRelay({
      domain: 'tunnel.test', httpPort: relayPort, stateDir: join(dir, 'relay'), timeout: BOUND,
      args: ['--authtoken', TOKEN, '--heartbeat-timeout', '2', '--metrics-addr', `127.0.0.1:${metricsPort}`, '--drain-timeout', '1'],
    })
  }
  const startAgent = async (): Promise<Spawned> => {
    const a = spawnGw(['http', String(upstream.port), '--relay', `http://127.0.0.1:${relayPort}`, '--authtoken', TOKEN, '--url', 'faulty', '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'],
      { GW_CONFIG: join(dir, 'agent', 'gw.yml') })
    await a.waitForLine((l) => l.includes('"started tunnel"'), BOUND)
    return a
  }
  const metric = async (name: string): Promise<number> => {
    const res = await request(`http://127.0.0.1:${metricsPort}/metrics`)
    const text = await res.body.text()
    const line = text.split('\n').find((l) => l.startsWith(`${name} `))
    return line ? Number(line.split(' ')[1]) : NaN
  }
  const settled = (): Promise<void> => waitFor(async () => (await metric('gw_relay_streams_open')) === 0, BOUND, 'the relay to hold no stream')
  const servesAgain = (): Promise<void> => waitFor(async () => {
    try {
      const res = await request(url('/'), { headers: { host: host() } })
      return res.statusCode === 200 && (await res.body.text()) === 'ok'
    } catch {
      return false
    }
  }, BOUND, 'the tunnel to serve again')
  const rss = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
  let baseline = 0

  before(async () => {
    relayPort = await freePort()
    metricsPort = await freePort()
    upstream = await startUpstream()
    relay = await startRelay()
    agent = await startAgent()
    await servesAgain()
    baseline = rss(relay.child.pid!)
  })
  after(async () => {
    agent?.kill()
    relay?.kill()
    upstream?.child.kill('SIGKILL')
    await Promise.all([agent?.exited, relay?.exited])
    rmSync(dir, { recursive: true, force: true })
  })

  it('kill -9 of the upstream mid-request, mid-download and mid-upload', async () => {
    const slow = outcome(request(url('/slow'), { headers: { host: host() } }))
    const download = request(url('/download'), { headers: { host: host() } })
    const upload = outcome(request(url('/upload'), {
      method: 'POST', headers: { host: host() },
      body: Readable.from((async function* () { for (;;) { yield Buffer.alloc(8192); await new Promise((r) => setTimeout(r, 20)) } })()),
    }))
    await Promise.all(['arrived /slow', 'arrived /download', 'arrived /upload'].map((l) => upstream.waitFor(l)))
    const started = await download
    assert.equal(started.statusCode, 200)
    const downloaded = outcome(Promise.resolve(started))
    await kill9(upstream.child)
    assert.equal(await slow, '502 GW_ERR_UPSTREAM_FAILED')
    assert.match(await downloaded, /^200 then body error/)
    assert.match(await upload, /^502 GW_ERR_UPSTREAM_(FAILED|REFUSED)$|^error /)
    await settled()
    upstream = await startUpstream(upstream.port)
    await servesAgain()
  })

  it('kill -9 of the agent mid-request and mid-download; its restart serves the same URL', async () => {
    upstream.lines.length = 0
    const slow = outcome(request(url('/slow'), { headers: { host: host() } }))
    const started = await request(url('/download'), { headers: { host: host() } })
    await Promise.all(['arrived /slow', 'arrived /download'].map((l) => upstream.waitFor(l)))
    const downloaded = outcome(Promise.resolve(started))
    await kill9(agent.child)
    assert.match(await slow, /^502 GW_ERR_(AGENT_OFFLINE|MUX_CLOSED|MUX_STREAM_RESET)$/)
    assert.match(await downloaded, /^200 then body error/)
    await settled()
    // The dead agent's connections to the upstream are gone with it.
    await Promise.all(['closed /slow', 'closed /download'].map((l) => upstream.waitFor(l)))
    agent = await startAgent()
    await servesAgain()
  })

  it('kill -9 of the relay mid-request: the client gets a clean error, the upstream call ends, the agent comes back', async () => {
    upstream.lines.length = 0
    const slow = outcome(request(url('/slow'), { headers: { host: host() } }))
    await upstream.waitFor('arrived /slow')
    await kill9(relay.child)
    assert.match(await slow, /^error /)
    // The agent saw its link die and gave up the upstream call.
    await upstream.waitFor('closed /slow')
    relay = await startRelay()
    await servesAgain()
    baseline = rss(relay.child.pid!)
  })

  it('SIGSTOP of the agent: the relay answers 502 within its heartbeat timeout, and the agent comes back on SIGCONT', async () => {
    upstream.lines.length = 0
    const slow = outcome(request(url('/slow'), { headers: { host: host() } }))
    await upstream.waitFor('arrived /slow')
    agent.child.kill('SIGSTOP')
    try {
      assert.match(await slow, /^502 GW_ERR_(AGENT_OFFLINE|MUX_CLOSED|MUX_KEEPALIVE_TIMEOUT)$/)
      await settled()
    } finally {
      agent.child.kill('SIGCONT')
    }
    await upstream.waitFor('closed /slow')
    await servesAgain()
  })

  it('SIGSTOP of the relay: requests wait, nothing is lost, and it serves again on SIGCONT', async () => {
    relay.child.kill('SIGSTOP')
    let answer: Promise<string>
    try {
      // A request made while the relay is stopped is accepted by the kernel and answered on SIGCONT.
      answer = outcome(request(url('/'), { headers: { host: host() } }))
      await new Promise((r) => setTimeout(r, 3000))
    } finally {
      relay.child.kill('SIGCONT')
    }
    // The agent may have reconnected meanwhile (its keepalive ran out): the request is
    // then either served or refused cleanly, never lost.
    assert.match(await answer, /^200$|^502 GW_ERR_(AGENT_OFFLINE|MUX_CLOSED|MUX_KEEPALIVE_TIMEOUT)$/)
    await servesAgain()
    await settled()
  })

  it('the relay RSS is back near its baseline', async () => {
    // A bound on memory, not on time: 64 MiB above what the fresh relay held.
    const now = rss(relay.child.pid!)
    assert.ok(now < baseline + 64 * 1024 * 1024, `relay RSS ${now} against a baseline of ${baseline}`)
  })
})
