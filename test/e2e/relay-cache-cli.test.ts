/**
 * The relay cache turned on the way an operator and a developer do it, with the real
 * binaries: `gw relay --relay-cache 1MB`, then `gw http <port> --relay-cache` and a
 * `gw start` config file with `relay_cache: true` on one endpoint and not on another.
 * Every hit is counted at the upstream (it does not see the request), and the agent's
 * inspector (its API, /api/requests/http) lists the requests the cache answered.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { spawnGw, spawnRelay, startUpstream, tempDir, type Spawned, type SpawnedRelay } from '../helpers/stack.js'

const TOKEN = 'cache-cli-token-0123456789abcdef'

interface Captured { id: string; request: { method: string; uri: string }; response?: { status_code?: number; headers?: Record<string, string[]> } }

describe('relay cache from the command line and a config file', () => {
  it('gw http --relay-cache and relay_cache: true are answered from gw relay --relay-cache; the inspector lists the hits', { timeout: 120_000 }, async (t) => {
    const dir = tempDir('gw-cache-cli-')
    const seen = new Map<string, number>()
    const upstream = await startUpstream((req, res) => {
      const key = `${String(req.headers.host).split('.')[0]} ${req.url}`
      seen.set(key, (seen.get(key) ?? 0) + 1)
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' })
      res.end(`body of ${req.url}`)
    })
    let relay: SpawnedRelay | undefined
    const agents: Spawned[] = []
    t.after(async () => {
      for (const a of agents) a.kill()
      await Promise.all(agents.map((a) => a.exited))
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    // The relay's own default for --workers: with --relay-cache, one process, so that every
    // request meets the cache (a worker without the agent's link passes it by), and each
    // request below is on a new connection, as the primary would hand them to workers in turn.
    relay = await spawnRelay({ workers: null, domain: 'tunnel.test', stateDir: join(dir, 'relay'), args: ['--authtoken', TOKEN, '--relay-cache', '1MB'] })
    assert.ok(relay.lines.some((l) => l.includes('one relay process, not one per core: --relay-cache')), relay.lines.join('\n'))
    assert.ok(!relay.lines.some((l) => l.includes('starting relay workers')), relay.lines.join('\n'))
    const relayUrl = relay.url
    const get = async (name: string, path: string) => {
      const res = await request(`${relayUrl}${path}`, { headers: { host: `${name}.tunnel.test` }, reset: true })
      return { status: res.statusCode, body: await res.body.text(), cacheStatus: String(res.headers['cache-status'] ?? '') }
    }

    // gw http --relay-cache.
    const flagAgent = spawnGw(['http', String(upstream.port), '--relay', relayUrl, '--url', 'flagged', '--relay-cache', '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'],
      { GW_CONFIG: join(dir, 'flag', 'gw.yml'), GW_AUTHTOKEN: TOKEN })
    agents.push(flagAgent)
    const api = (JSON.parse(await flagAgent.waitForLine((l) => l.includes('"msg":"agent API"'), 60_000)) as { url: string }).url
    await flagAgent.waitForLine((l) => l.includes('"started tunnel"'), 60_000)
    assert.ok(!flagAgent.lines.some((l) => l.includes('keeps no cache')), flagAgent.lines.join('\n'))
    const miss = await get('flagged', '/page')
    assert.deepEqual([miss.status, miss.body, miss.cacheStatus], [200, 'body of /page', 'gw; fwd=miss; stored'])
    for (let i = 0; i < 3; i++) {
      const hit = await get('flagged', '/page')
      assert.equal(hit.body, 'body of /page')
      assert.match(hit.cacheStatus, /^gw; hit/)
    }
    assert.equal(seen.get('flagged /page'), 1, 'the upstream saw the first request only')

    // The inspector lists all four, the three the cache answered with their Cache-Status.
    let listed: Captured[] = []
    for (let tries = 0; tries < 100; tries++) {
      const res = await request(`${api}/api/requests/http`)
      listed = ((await res.body.json()) as { requests: Captured[] }).requests.filter((r) => r.request.uri === '/page')
      if (listed.length === 4) break
      await new Promise((r) => setTimeout(r, 100))
    }
    assert.equal(listed.length, 4, JSON.stringify(listed))
    const statuses = listed.map((r) => {
      const headers = Object.fromEntries(Object.entries(r.response?.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
      return String(headers['cache-status']?.[0] ?? '')
    })
    assert.equal(statuses.filter((s) => s.startsWith('gw; hit')).length, 3, JSON.stringify(statuses))
    // The miss is recorded as the upstream answered it: the relay adds its Cache-Status after the agent.
    assert.equal(statuses.filter((s) => s === '').length, 1, JSON.stringify(statuses))

    // gw start: relay_cache: true on one endpoint; the other endpoint of the same file is not cached.
    const config = join(dir, 'endpoints.yml')
    writeFileSync(config, [
      'version: 3',
      'agent:',
      `  connect_url: ${relayUrl}`,
      `  authtoken: ${TOKEN}`,
      'endpoints:',
      '  - name: cached',
      '    url: from-file',
      `    upstream: { url: ${upstream.port} }`,
      '    relay_cache: true',
      '  - name: plain',
      '    url: not-cached',
      `    upstream: { url: ${upstream.port} }`,
      '',
    ].join('\n'))
    const fileAgent = spawnGw(['start', '--all', '--config', config, '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'])
    agents.push(fileAgent)
    await fileAgent.waitForLine((l) => l.includes('"started tunnel"') && l.includes('from-file'), 60_000)
    await fileAgent.waitForLine((l) => l.includes('"started tunnel"') && l.includes('not-cached'), 60_000)
    assert.equal((await get('from-file', '/doc')).cacheStatus, 'gw; fwd=miss; stored')
    assert.match((await get('from-file', '/doc')).cacheStatus, /^gw; hit/)
    assert.match((await get('from-file', '/doc')).cacheStatus, /^gw; hit/)
    assert.equal(seen.get('from-file /doc'), 1)
    for (let i = 0; i < 3; i++) assert.equal((await get('not-cached', '/doc')).cacheStatus, '', 'no relay_cache: not cached')
    assert.equal(seen.get('not-cached /doc'), 3)
  })
})
