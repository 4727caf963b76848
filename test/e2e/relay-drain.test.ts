/**
 * Graceful drain of a real `gw relay` on a real SIGTERM, with a real `gw http` agent:
 * the request in flight completes with 200, new connections are refused, the agent is
 * told to go away and connects again (here to a new relay on the same port), and the
 * relay exits 0. A request longer than --drain-timeout is cut and the relay still exits.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { Client } from 'undici'
import { freePort, spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type Spawned, type SpawnedRelay } from '../helpers/stack.js'

const TOKEN = 'drain-token-0123456789abcdef'

function startRelay(port: number, stateDir: string, drainTimeout: number): Promise<SpawnedRelay> {
  // One relay process: the drain of the process holding the agent and the client's
  // connection (with --workers a request forwarded from another worker is answered 502
  // when the holder's drain cuts it, not reset). Drain across workers: relay-workers-ipc.test.ts.
  return spawnRelay({ domain: 'tunnel.test', httpPort: port, stateDir, args: ['--authtoken', TOKEN, '--drain-timeout', String(drainTimeout)] })
}

function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
}

describe('gw relay drains on SIGTERM', () => {
  it('finishes the request in flight with 200, refuses new connections, answers /healthz 503 on an open one, sends the agent away, exits 0', async () => {
    const dir = tempDir('gw-drain-')
    let slowArrived = 0
    const upstream = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        slowArrived++
        setTimeout(() => res.end('slow done'), 1500)
      } else res.end('fast')
    })
    const port = await freePort()
    let relay: SpawnedRelay | undefined
    let agent: Spawned | undefined
    const clients: Client[] = []
    try {
      relay = await startRelay(port, join(dir, 'relay'), 20)
      agent = spawnGw(['http', String(upstream.port), '--relay', `http://127.0.0.1:${port}`, '--authtoken', TOKEN, '--url', 'app', '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'agent', 'gw.yml') })
      await agent.waitForLine((l) => l.includes('"started tunnel"'))
      const host = `app.tunnel.test:${port}`
      const client = new Client(`http://127.0.0.1:${port}`)
      clients.push(client)
      const slow = client.request({ path: '/slow', method: 'GET', headers: { host } }).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }))
      await waitFor(() => slowArrived === 1, 10_000, 'the slow request at the upstream')
      // A load balancer's health check, half sent before the signal, so its connection is not idle.
      const probe = connect(port, '127.0.0.1')
      let probeAnswer = ''
      probe.on('data', (d: Buffer) => (probeAnswer += d.toString('latin1')))
      const probeClosed = new Promise<void>((resolve) => probe.on('close', () => resolve()))
      await new Promise<void>((resolve) => probe.once('connect', () => resolve()))
      probe.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')

      relay.kill('SIGTERM')
      await relay.waitForLine((l) => l.includes('"relay draining"'))
      // No new connection gets in while the old request finishes.
      assert.equal(await connectError(port), 'ECONNREFUSED')
      // The health check finished on its open connection: 503 draining, and the connection closes.
      probe.write('\r\n')
      await probeClosed
      assert.match(probeAnswer, /^HTTP\/1\.1 503 /)
      assert.match(probeAnswer, /\r\ngw-error-code: GW_ERR_RELAY_DRAINING\r\n/i)
      assert.match(probeAnswer, /\r\nconnection: close\r\n/i)
      // The agent heard the GoAway and tries to connect again.
      await agent.waitForLine((l) => l.includes('the relay is going away; reconnecting'))
      assert.deepEqual(await slow, { status: 200, body: 'slow done' })
      assert.equal(await relay.exited, 0)
      assert.ok(relay.lines.some((l) => l.includes('relay stopped: every request finished')), relay.lines.join('\n'))

      // "Elsewhere": a new relay on the same address; the agent comes back to it by itself.
      relay = await startRelay(port, join(dir, 'relay'), 20)
      await agent.waitForLine((l) => l.includes('"reconnected"'), 20_000)
      const again = new Client(`http://127.0.0.1:${port}`)
      clients.push(again)
      const res = await again.request({ path: '/', method: 'GET', headers: { host } })
      assert.equal(res.statusCode, 200)
      assert.equal(await res.body.text(), 'fast')
    } finally {
      for (const c of clients) await c.destroy()
      agent?.kill()
      await agent?.exited
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('cuts a request longer than --drain-timeout and still exits', async () => {
    const dir = tempDir('gw-drain-')
    let arrived = 0
    const upstream = await startUpstream((_req, res) => {
      arrived++
      // Answers long after the drain timeout.
      const timer = setTimeout(() => res.end('too late'), 60_000)
      res.on('close', () => clearTimeout(timer))
    })
    const port = await freePort()
    let relay: SpawnedRelay | undefined
    let agent: Spawned | undefined
    const client = new Client(`http://127.0.0.1:${port}`)
    try {
      relay = await startRelay(port, join(dir, 'relay'), 1)
      agent = spawnGw(['http', String(upstream.port), '--relay', `http://127.0.0.1:${port}`, '--authtoken', TOKEN, '--url', 'app', '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'agent', 'gw.yml') })
      await agent.waitForLine((l) => l.includes('"started tunnel"'))
      const hung = client.request({ path: '/hang', method: 'GET', headers: { host: `app.tunnel.test:${port}` } }).then(
        (res) => `status ${res.statusCode}`,
        (err: Error & { code?: string }) => err.code ?? err.message,
      )
      await waitFor(() => arrived === 1, 10_000, 'the request at the upstream')
      relay.kill('SIGTERM')
      assert.equal(await relay.exited, 0)
      assert.ok(relay.lines.some((l) => l.includes('the drain timeout cut the requests still open')), relay.lines.join('\n'))
      // The client's connection was cut: no response, an error.
      assert.match(await hung, /UND_ERR_SOCKET|ECONNRESET|other side closed/)
    } finally {
      await client.destroy()
      agent?.kill()
      await agent?.exited
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('takes drain_timeout from the --config file, and a reload of the file changes it', { timeout: 90_000 }, async () => {
    const dir = tempDir('gw-drain-')
    let arrived = 0
    const upstream = await startUpstream((_req, res) => {
      arrived++
      const timer = setTimeout(() => res.end('too late'), 120_000)
      res.on('close', () => clearTimeout(timer))
    })
    const port = await freePort()
    const configPath = join(dir, 'relay.yml')
    mkdirSync(join(dir, 'relay'))
    const write = (seconds: number): void => writeFileSync(configPath, [
      'domain: tunnel.test', 'host: 127.0.0.1', `http_port: ${port}`, 'https_port: off', `state_dir: ${join(dir, 'relay')}`,
      `drain_timeout: ${seconds}`, 'tokens:', `  - { label: ops, sha256: ${createHash('sha256').update(TOKEN).digest('hex')} }`, '',
    ].join('\n'))
    // 600 s at start: were the reload not taken, the drain below would outlast the test.
    write(600)
    let relay: SpawnedRelay | undefined
    let agent: Spawned | undefined
    const client = new Client(`http://127.0.0.1:${port}`)
    try {
      relay = await spawnRelay({ config: configPath })
      agent = spawnGw(['http', String(upstream.port), '--relay', `http://127.0.0.1:${port}`, '--authtoken', TOKEN, '--url', 'app', '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'agent', 'gw.yml') })
      await agent.waitForLine((l) => l.includes('"started tunnel"'))
      write(1)
      await relay.waitForLine((l) => l.includes('"config reloaded"'), 15_000)
      const hung = client.request({ path: '/hang', method: 'GET', headers: { host: `app.tunnel.test:${port}` } }).then(
        (res) => `status ${res.statusCode}`,
        (err: Error & { code?: string }) => err.code ?? err.message,
      )
      await waitFor(() => arrived === 1, 10_000, 'the request at the upstream')
      relay.kill('SIGTERM')
      const draining = JSON.parse(await relay.waitForLine((l) => l.includes('"relay draining"'))) as { timeout_s: number }
      assert.equal(draining.timeout_s, 1)
      assert.equal(await relay.exited, 0)
      assert.ok(relay.lines.some((l) => l.includes('the drain timeout cut the requests still open')), relay.lines.join('\n'))
      assert.match(await hung, /UND_ERR_SOCKET|ECONNRESET|other side closed/)
    } finally {
      await client.destroy()
      agent?.kill()
      await agent?.exited
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
