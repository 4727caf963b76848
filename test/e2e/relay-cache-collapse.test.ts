/**
 * Request collapsing in the relay's cache: concurrent misses of one URL cost the agent
 * one request. A real relay, a real agent, and an upstream that counts requests and holds
 * its first answer until the test has sent every request.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Pool } from 'undici'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { request } from 'undici'
import { startAgent } from '@gw/cli/agent/agent'
import { startStack, waitFor } from '../helpers/stack.js'

const CONCURRENT = 10

describe('relay cache request collapsing', () => {
  it('concurrent misses of one URL wait for the first and are answered from what it stored; unstored answers release them to the agent', async (t) => {
    const seen = new Map<string, number>()
    const holds: Array<() => void> = []
    let holding = true
    const stack = await startStack((req, res) => {
      const path = req.url ?? '/'
      seen.set(path, (seen.get(path) ?? 0) + 1)
      req.resume()
      const answer = (): void => {
        if (path === '/cold') {
          res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' })
          return void res.end(`cold body #${seen.get(path)}`)
        }
        if (path === '/private') {
          res.writeHead(200, { 'cache-control': 'private, max-age=60' })
          return void res.end('mine')
        }
        if (path === '/broken') return void res.socket?.destroy()
        res.writeHead(404).end()
      }
      if (holding) holds.push(answer)
      else answer()
    }, { relay: { relayCache: { maxBytes: 1024 * 1024 }, metricsAddr: '127.0.0.1:0' } })
    t.after(() => stack.close())
    const agent = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: stack.upstream.url, relayCache: true }] })
    t.after(() => agent.close())
    const host = `${agent.tunnels[0]!.publicName}.localhost`
    const pool = new Pool(stack.relay.httpUrl!, { connections: CONCURRENT * 2 })
    t.after(() => pool.close())

    /** CONCURRENT requests at once; the upstream's first answer waits until they are all sent and a moment more. */
    const burst = async (path: string) => {
      holding = true
      const pending = Array.from({ length: CONCURRENT }, () => pool.request({ path, method: 'GET', headers: { host } }).then(async (res) => ({
        status: res.statusCode, body: await res.body.text(), cacheStatus: String(res.headers['cache-status'] ?? ''),
      })))
      await waitFor(() => holds.length >= 1, 10_000, `the first ${path} at the upstream`)
      // Not a speed assertion: time for the other requests to reach the relay and wait there.
      await new Promise((r) => setTimeout(r, 500))
      holding = false
      for (const answer of holds.splice(0)) answer()
      return Promise.all(pending)
    }

    const cold = await burst('/cold')
    assert.equal(seen.get('/cold'), 1, 'the agent was asked once for ten concurrent misses')
    assert.ok(cold.every((r) => r.status === 200 && r.body === 'cold body #1'), JSON.stringify(cold))
    assert.equal(cold.filter((r) => r.cacheStatus === 'gw; fwd=miss; stored').length, 1)
    const collapsed = cold.filter((r) => /^gw; hit; ttl=\d+; detail=collapsed$/.test(r.cacheStatus)).length
    assert.ok(collapsed >= 1, JSON.stringify(cold.map((r) => r.cacheStatus)))
    assert.equal(cold.filter((r) => r.cacheStatus.startsWith('gw; hit')).length, CONCURRENT - 1)
    const text = await (await request(stack.relay.metricsUrl!)).body.text()
    const family = parsePrometheusTextFormat(text).find((f) => f.name === 'gw_relay_cache_collapsed_total') as { metrics: Array<{ value: string }> } | undefined
    assert.equal(Number(family?.metrics[0]?.value), collapsed)

    // A response the cache may not keep: the waiting requests go to the agent, each its own.
    const mine = await burst('/private')
    assert.equal(seen.get('/private'), CONCURRENT)
    assert.ok(mine.every((r) => r.status === 200 && r.body === 'mine' && r.cacheStatus === 'gw; fwd=miss'), JSON.stringify(mine))

    // The first miss fails: the others are not left waiting, and get the agent's own answer.
    const broken = await burst('/broken')
    assert.equal(seen.get('/broken'), CONCURRENT)
    assert.ok(broken.every((r) => r.status === 502), JSON.stringify(broken.map((r) => r.status)))
  })
})
