/**
 * `gw relay --workers 2 --redis …`: two relay processes behind one listener (node:cluster),
 * each one member of the Redis cluster. Real binary, real redis-server, real agents:
 * idle agents are spread over both workers, and requests for one name, each on a new
 * connection, arrive through both workers and all reach the agent (the worker that does
 * not hold it forwards).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { spawnGw, startUpstream, tempDir, waitFor } from '../helpers/stack.js'
import { REDIS_SKIP, startRedis } from '../helpers/redis.js'

const TOKEN = 'workers-token-0123456789abcdef'
const SECRET = 'workers-secret-0123456789abcdef'

describe('gw relay --workers', { skip: REDIS_SKIP }, () => {
  it('--workers 2: idle agents are spread over both workers, and requests for one name arrive through both', async () => {
    const dir = tempDir('gw-workers-')
    const redis = await startRedis()
    const upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    const relay = spawnGw(
      ['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, 'relay'), '--authtoken', TOKEN, '--redis', redis.url, '--workers', '2', '--log-format', 'json'],
      { GW_RELAY_CLUSTER_SECRET: SECRET },
    )
    const agents: Agent[] = []
    try {
      await waitFor(() => relay.lines.filter((l) => l.includes('"relay started"')).length === 2, 30_000, 'both workers started')
      const started = relay.lines.filter((l) => l.includes('"relay started"')).map((l) => JSON.parse(l) as { http_port: number; cluster: string })
      assert.equal(started.length, 2)
      const port = started[0]!.http_port
      assert.equal(started[1]!.http_port, port, 'both workers serve one port')
      const ids = new Set(started.map((s) => s.cluster))
      assert.equal(ids.size, 2)
      const url = `http://127.0.0.1:${port}`

      // Eight idle agents through the one port: the primary hands connections out in turn.
      for (let i = 0; i < 8; i++) {
        agents.push(await startAgent({ relay: url, authtoken: TOKEN, endpoints: [{ upstream: upstream.url, publicName: `idle${i}` }] }))
      }
      const holders = new Map<string, number>()
      await waitFor(() => {
        holders.clear()
        for (let i = 0; i < 8; i++) {
          const holder = redis.cli('zrange', `{gw}:p:idle${i}`, '0', '-1')
          if (holder) holders.set(holder, (holders.get(holder) ?? 0) + 1)
        }
        return [...holders.values()].reduce((a, b) => a + b, 0) === 8
      }, 10_000, 'presence of all eight agents')
      assert.deepEqual(new Set(holders.keys()), ids, `agents per worker: ${JSON.stringify([...holders])}`)
      for (const n of holders.values()) assert.ok(n >= 2, `agents per worker: ${JSON.stringify([...holders])}`)

      // Requests for one name, each on a new connection, with the relay's own page between
      // them (two requests, one page: the pattern shifts, so both kinds meet both workers).
      const evalCalls = (): number => [...redis.cli('info', 'commandstats').matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
      const lookupsBefore = evalCalls()
      const seen = new Set<string>()
      for (let i = 0; i < 60; i++) {
        if (i % 3 === 2) {
          const health = await request(`${url}/healthz`, { reset: true })
          const member = /Cluster member (relay-[0-9a-f]+)/.exec(await health.body.text())
          if (member) seen.add(member[1]!)
          continue
        }
        const res = await request(`${url}/r${i}`, { headers: { host: 'idle0.tunnel.test' }, reset: true })
        assert.equal(res.statusCode, 200)
        assert.equal(await res.body.text(), `ok /r${i}`)
      }
      assert.deepEqual(seen, ids, 'new connections reach both workers')
      // The worker that does not hold idle0 looked it up in Redis (one Lua call, then
      // cached for a second) and forwarded; the holder needs no lookup.
      assert.ok(evalCalls() > lookupsBefore, 'requests for idle0 reached the worker that does not hold it')
    } finally {
      await Promise.all(agents.map((a) => a.close()))
      relay.kill('SIGTERM')
      const code = await relay.exited
      await upstream.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
      assert.equal(code, 0, 'the primary exits 0 once its workers drained')
    }
  })
})
