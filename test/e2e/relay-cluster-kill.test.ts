/**
 * kill -9 of a relay under steady load, with the real binaries: two spawned `gw relay
 * --redis` on one real redis-server, a spawned `gw http` that dialled relay A, and a
 * client sending requests through relay B all along. Relay A dies; the agent, which
 * learned relay B's URL from A's welcome, reconnects to B and keeps its name; from 2 s
 * after the kill not one request fails.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type Spawned, type SpawnedRelay } from '../helpers/stack.js'
import { REDIS_SKIP, startRedis } from '../helpers/redis.js'

const TOKEN = 'cluster-kill-token-0123456789abcdef'
const SECRET = 'cluster-kill-secret-0123456789abcdef'

// One process per relay (--workers 1): the kill is of a relay, and three relays' worth of
// worker processes starting at once under load missed the start timeout.
function clusterRelay(dir: string, name: string, redisUrl: string): Promise<SpawnedRelay> {
  return spawnRelay({
    workers: 1, domain: 'tunnel.test', stateDir: join(dir, name), args: ['--authtoken', TOKEN, '--redis', redisUrl], env: { GW_RELAY_CLUSTER_SECRET: SECRET },
  })
}

describe('relay cluster: kill -9 of a relay', { skip: REDIS_SKIP }, () => {
  it('under steady load through relay B, relay A is killed: the agent moves to B, keeps its name, and from 2 s on no request fails', async () => {
    const dir = tempDir('gw-cluster-kill-')
    const redis = await startRedis()
    const upstream = await startUpstream((req, res) => setTimeout(() => res.end(`ok ${req.url}`), 2))
    const procs: Spawned[] = []
    let client: Pool | undefined
    // Outside the try: a failure must stop the request loops too, or they keep the file alive
    // until its timeout (a failed run hung 300 s).
    let running = true
    try {
      const held = async (name: string): Promise<SpawnedRelay> => {
        const relay = await clusterRelay(dir, name, redis.url)
        procs.push(relay)
        return relay
      }
      const [a, b] = await Promise.all([held('a'), held('b')])
      const [portA, portB] = [a.httpPort, b.httpPort]
      const agent = spawnGw(
        ['http', String(upstream.port), '--relay', `http://127.0.0.1:${portA}`, '--authtoken', TOKEN, '--url', 'app', '--log-format', 'json', '--log-level', 'debug', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'],
        { GW_CONFIG: join(dir, 'gw.yml') },
      )
      procs.push(agent)
      const started = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
      assert.equal(started.url, `http://app.tunnel.test:${portA}`)

      client = new Pool(`http://127.0.0.1:${portB}`, { connections: 4, headersTimeout: 10_000, bodyTimeout: 10_000 })
      const results: Array<{ at: number; ok: boolean; detail: string }> = []
      const worker = async (w: number): Promise<void> => {
        for (let i = 0; running; i++) {
          const at = Date.now()
          try {
            const res = await client!.request({ path: `/w${w}/${i}`, method: 'GET', headers: { host: `app.tunnel.test:${portB}` } })
            const body = await res.body.text()
            results.push({ at, ok: res.statusCode === 200 && body === `ok /w${w}/${i}`, detail: `${res.statusCode} ${res.headers['gw-error-code'] ?? ''}` })
          } catch (err) {
            results.push({ at, ok: false, detail: (err as Error).message })
            await new Promise((r) => setTimeout(r, 10))
          }
        }
      }
      const workers = [0, 1, 2, 3].map(worker)
      // Steady state first: every request through B reaches the agent on A.
      await waitFor(() => results.length >= 200, 20_000, '200 requests through relay B')
      assert.ok(results.every((r) => r.ok), `before the kill: ${results.filter((r) => !r.ok).map((r) => r.detail).join(', ')}`)

      const killedAt = Date.now()
      a.child.kill('SIGKILL')
      await a.exited
      // The agent reconnects, to relay B (the only live one), with its name.
      const moved = await agent.waitForLine((l) => l.includes('"reconnected"'), 10_000)
      assert.match(moved, new RegExp(`app\\.tunnel\\.test:${portB}`))
      // Load goes on until well past the 2 s mark.
      await waitFor(() => Date.now() - killedAt > 4_000 && results.filter((r) => r.at >= killedAt + 2_000).length >= 200, 30_000, '200 requests after the 2 s mark')
      running = false
      await Promise.all(workers)

      const late = results.filter((r) => r.at >= killedAt + 2_000)
      const lateFailures = late.filter((r) => !r.ok)
      assert.equal(lateFailures.length, 0, `failed after 2 s: ${lateFailures.map((r) => `${r.at - killedAt} ms: ${r.detail}`).join(', ')}`)
      assert.ok(late.length >= 200)
      // The agent kept running all along, and its name.
      assert.equal(agent.child.exitCode, null)
      assert.ok(!agent.lines.some((l) => l.includes('GW_ERR_NAME_TAKEN')))
      const early = results.filter((r) => r.at >= killedAt && r.at < killedAt + 2_000)
      console.log(`# kill -9 relay A: ${early.filter((r) => !r.ok).length} of ${early.length} requests failed in the first 2 s, 0 of ${late.length} after`)
    } finally {
      running = false
      await client?.destroy()
      for (const p of procs) p.kill('SIGKILL')
      await Promise.all(procs.map((p) => p.exited))
      await upstream.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
