/**
 * Pooling (ngrok's --pooling-enabled) with the real binaries: a spawned `gw relay`, two
 * spawned `gw http` agents with one token on one name, and a real HTTP client. Requests
 * are spread over both agents; one agent restarts while the client keeps sending, and
 * not one request fails. An agent with another token cannot join the pool.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type Spawned, type SpawnedRelay } from '../helpers/stack.js'

const TOKEN_A = 'pool-token-a-0123456789abcdef'
const TOKEN_B = 'pool-token-b-0123456789abcdef'

function startAgent(port: number, relayUrl: string, token: string, configDir: string): Spawned {
  return spawnGw(
    ['http', String(port), '--relay', relayUrl, '--authtoken', token, '--url', 'pooled', '--pooling-enabled', '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'],
    { GW_CONFIG: join(configDir, 'gw.yml') },
  )
}

describe('pooling: several agents of one token on one name', () => {
  it('spreads requests over two real agents, and an agent restart fails no request', async () => {
    const dir = tempDir('gw-pool-')
    const counts = { a: 0, b: 0 }
    // A little latency, so requests are in flight on the agent when it is told to stop.
    const upstreamA = await startUpstream((_req, res) => {
      counts.a++
      setTimeout(() => res.end('a'), 15)
    })
    const upstreamB = await startUpstream((_req, res) => {
      counts.b++
      setTimeout(() => res.end('b'), 15)
    })
    let relay: SpawnedRelay | undefined
    const agents: Spawned[] = []
    let client: Pool | undefined
    try {
      relay = await spawnRelay({ workers: null, domain: 'tunnel.test', stateDir: join(dir, 'relay'), args: ['--authtoken', TOKEN_A, '--authtoken', TOKEN_B] })
      const relayUrl = relay.url
      const host = `pooled.tunnel.test:${relay.httpPort}`

      let agentA = startAgent(upstreamA.port, relayUrl, TOKEN_A, join(dir, 'a'))
      agents.push(agentA)
      await agentA.waitForLine((l) => l.includes('"started tunnel"'))
      const agentB = startAgent(upstreamB.port, relayUrl, TOKEN_A, join(dir, 'b'))
      agents.push(agentB)
      const lineB = JSON.parse(await agentB.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
      assert.equal(lineB.url, `http://${host}`)
      for (const agent of [agentA, agentB]) assert.ok(!agent.lines.some((l) => l.includes('does not pool')), agent.lines.join('\n'))

      // Another token cannot join, pooling or not.
      const stranger = startAgent(upstreamA.port, relayUrl, TOKEN_B, join(dir, 'c'))
      agents.push(stranger)
      assert.notEqual(await stranger.exited, 0)
      assert.match(stranger.stderr(), /belongs to another authtoken.*GW_ERR_NAME_TAKEN/s)

      client = new Pool(relayUrl, { connections: 8 })
      const pool = client
      const results = { ok: 0, failed: [] as string[], bodies: { a: 0, b: 0 } as Record<string, number> }
      let running = true
      const worker = async (): Promise<void> => {
        while (running) {
          try {
            const res = await pool.request({ path: '/', method: 'GET', headers: { host } })
            const body = await res.body.text()
            if (res.statusCode === 200 && (body === 'a' || body === 'b')) {
              results.ok++
              results.bodies[body]!++
            } else {
              results.failed.push(`${res.statusCode} ${String(res.headers['gw-error-code'] ?? '')} ${body.slice(0, 120)}`)
            }
          } catch (err) {
            results.failed.push(`client error: ${(err as Error).message}`)
          }
        }
      }
      const workers = Array.from({ length: 8 }, () => worker())

      // Both agents serve while both are up.
      await waitFor(() => results.bodies.a! > 20 && results.bodies.b! > 20, 20_000, 'requests served by both agents')

      // Restart agent A while the client keeps sending: SIGTERM, wait for it to exit, start it again.
      agentA.kill('SIGTERM')
      assert.equal(await agentA.exited, 0)
      const atExit = { ok: results.ok, a: results.bodies.a!, b: results.bodies.b! }
      // A while with agent A gone: B alone serves, and nothing fails.
      await waitFor(() => results.bodies.b! > atExit.b + 20, 20_000, 'requests served by B alone')
      const whileDown = { a: results.bodies.a!, b: results.bodies.b! }
      const aBeforeRestart = counts.a
      agentA = startAgent(upstreamA.port, relayUrl, TOKEN_A, join(dir, 'a'))
      agents.push(agentA)
      await agentA.waitForLine((l) => l.includes('"started tunnel"'))
      assert.deepEqual(results.failed, [], 'no request failed while agent A was down')
      assert.equal(whileDown.a, atExit.a, 'no answer from A after it exited')
      await waitFor(() => counts.a > aBeforeRestart + 20, 20_000, 'requests served by the restarted agent')

      running = false
      await Promise.all(workers)
      assert.deepEqual(results.failed, [], `${results.failed.length} of ${results.ok + results.failed.length} requests failed`)
      assert.ok(results.ok > atExit.ok + 40, `${results.ok - atExit.ok} requests served after agent A's restart began`)
      assert.ok(results.bodies.a! > 20 && results.bodies.b! > 20, JSON.stringify(results.bodies))
    } finally {
      await client?.close()
      for (const agent of agents) agent.kill()
      await Promise.all(agents.map((a) => a.exited))
      await relay?.stop()
      await upstreamA.close()
      await upstreamB.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('pooling_enabled: true on config endpoints pools two gw start agents; an agent that does not pool takes the name over', { timeout: 120_000 }, async () => {
    const dir = tempDir('gw-pool-cfg-')
    const upstreams = await Promise.all(['c', 'd', 'e'].map((tag) => startUpstream((_req, res) => res.end(tag))))
    let relay: SpawnedRelay | undefined
    const agents: Spawned[] = []
    let relayClient: Pool | undefined
    try {
      relay = await spawnRelay({ workers: null, domain: 'tunnel.test', stateDir: join(dir, 'relay'), args: ['--authtoken', TOKEN_A] })
      const { url: relayUrl, httpPort } = relay
      relayClient = new Pool(relayUrl, { connections: 4 })
      const fromFile = (i: number): Spawned => {
        const config = join(dir, `agent-${i}`, 'gw.yml')
        mkdirSync(join(dir, `agent-${i}`))
        writeFileSync(config, ['version: 3', 'agent:', `  connect_url: ${relayUrl}`, `  authtoken: ${TOKEN_A}`, 'endpoints:',
          '  - name: web', '    url: from-config', `    upstream: { url: ${upstreams[i]!.port} }`, '    pooling_enabled: true', ''].join('\n'))
        return spawnGw(['start', '--all', '--config', config, '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'])
      }
      const served = async (n: number): Promise<Record<string, number>> => {
        const tally: Record<string, number> = {}
        for (let i = 0; i < n; i++) {
          const res = await relayClient!.request({ path: '/', method: 'GET', headers: { host: `from-config.tunnel.test:${httpPort}` } })
          const body = await res.body.text()
          assert.equal(res.statusCode, 200, body)
          tally[body] = (tally[body] ?? 0) + 1
        }
        return tally
      }
      for (const i of [0, 1]) {
        const agent = fromFile(i)
        agents.push(agent)
        await agent.waitForLine((l) => l.includes('"started tunnel"') && l.includes('from-config'), 60_000)
      }
      const both = await served(40)
      assert.ok((both.c ?? 0) >= 10 && (both.d ?? 0) >= 10, `both pooled agents serve: ${JSON.stringify(both)}`)

      // The same token without pooling: it takes the name over, as a restart does.
      const solo = spawnGw(['http', String(upstreams[2]!.port), '--relay', relayUrl, '--authtoken', TOKEN_A, '--url', 'from-config', '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'],
        { GW_CONFIG: join(dir, 'solo', 'gw.yml') })
      agents.push(solo)
      await solo.waitForLine((l) => l.includes('"started tunnel"'), 60_000)
      await waitFor(async () => JSON.stringify(await served(1)) === '{"e":1}', 10_000, 'the solo agent holds the name')
      assert.deepEqual(await served(20), { e: 20 })
    } finally {
      await relayClient?.close()
      for (const agent of agents) agent.kill()
      await Promise.all(agents.map((a) => a.exited))
      await relay?.stop()
      await Promise.all(upstreams.map((u) => u.close()))
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
