/**
 * The relay's shared HTTP cache (gw relay --relay-cache, gw http --relay-cache) with a
 * real upstream, a real agent and a real relay: every hit is proven by the upstream not
 * seeing the request, every miss by it seeing one.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { writeFileSync } from 'node:fs'
import { loadRelayConfig } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { AgentEvents, type Exchange } from '@gw/cli/agent/events'
import { spawnGw, startStack, startUpstream, tempDir, waitFor, type Stack } from '../helpers/stack.js'

interface Seen { count: number; headers: IncomingMessage['headers'][] }

function recorder(routes: (req: IncomingMessage, res: ServerResponse) => void): { seen: Map<string, Seen>; handler: (req: IncomingMessage, res: ServerResponse) => void } {
  const seen = new Map<string, Seen>()
  return {
    seen,
    handler: (req, res) => {
      const key = `${req.method} ${req.url}`
      const s = seen.get(key) ?? { count: 0, headers: [] }
      s.count++
      s.headers.push(req.headers)
      seen.set(key, s)
      req.resume()
      req.on('end', () => routes(req, res))
    },
  }
}

const count = (seen: Map<string, Seen>, key: string): number => seen.get(key)?.count ?? 0

async function get(stack: Stack, path: string, headers: Record<string, string> = {}, method = 'GET', host = stack.host) {
  const res = await request(`${stack.httpOrigin}${path}`, { method, headers: { host, ...headers } })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body, cacheStatus: String(res.headers['cache-status'] ?? '') }
}

async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await request(url)).body.text()
  const family = (parsePrometheusTextFormat(text) as Array<{ name: string; metrics: Array<{ value: string; labels?: Record<string, string> }> }>).find((f) => f.name === name)
  assert.ok(family, `${name} is exported`)
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  return Number(sample?.value ?? 0)
}

describe('relay cache', () => {
  const { seen, handler } = recorder((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    switch (path) {
      case '/static':
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', etag: '"s1"' })
        return void res.end(`static body ${count(seen, `GET ${req.url}`)}`)
      case '/public':
        res.writeHead(200, { 'cache-control': 'public, max-age=60' })
        return void res.end('public body')
      case '/no-store':
        res.writeHead(200, { 'cache-control': 'no-store, max-age=60' })
        return void res.end('no-store body')
      case '/private':
        res.writeHead(200, { 'cache-control': 'private, max-age=60' })
        return void res.end('private body')
      case '/cookie':
        res.writeHead(200, { 'cache-control': 'max-age=60', 'set-cookie': 'sid=secret-session' })
        return void res.end('cookie body')
      case '/public-cookie':
        res.writeHead(200, { 'cache-control': 'public, max-age=60', 'set-cookie': 'theme=dark' })
        return void res.end('public cookie body')
      case '/vary':
        res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' })
        return void res.end(`lang ${req.headers['accept-language'] ?? 'none'}`)
      case '/etag': {
        // no-cache: stored, but revalidated with the agent on every use.
        if (req.headers['if-none-match'] === '"e1"') {
          res.writeHead(304, { etag: '"e1"', 'cache-control': 'no-cache' })
          return void res.end()
        }
        res.writeHead(200, { 'cache-control': 'no-cache', etag: '"e1"', 'content-type': 'text/plain' })
        return void res.end('etag body')
      }
      case '/lastmod': {
        const lastModified = 'Tue, 01 Dec 2026 10:00:00 GMT'
        if (req.headers['if-modified-since'] === lastModified) {
          res.writeHead(304, { 'cache-control': 'max-age=0' })
          return void res.end()
        }
        res.writeHead(200, { 'cache-control': 'max-age=0', 'last-modified': lastModified })
        return void res.end('lastmod body')
      }
      case '/aged':
        // Already 100 s old when it left the upstream (an origin's own cache in front of it).
        res.writeHead(200, { 'cache-control': 'max-age=160', age: '100' })
        return void res.end('aged body')
      case '/huge':
        res.writeHead(200, { 'cache-control': 'max-age=60' })
        return void res.end('h'.repeat(100_000))
      default:
        res.writeHead(404).end('no such path')
    }
  })
  let stack: Stack
  const logDir = tempDir()
  const accessLog = join(logDir, 'access.log')
  before(async () => {
    stack = await startStack(handler, {
      relay: { relayCache: { maxBytes: 1024 * 1024, maxEntryBytes: 64 * 1024 }, metricsAddr: '127.0.0.1:0', accessLog },
    })
  })
  after(async () => {
    await stack.close()
    rmSync(logDir, { recursive: true, force: true })
  })

  // startStack's agent has no cached endpoint: this one asks for the cache.
  let agent: Agent
  let host: string
  let stackCached: Stack
  const events = new AgentEvents()
  const exchanges: Exchange[] = []
  events.on('exchange:end', (x) => exchanges.push(x))
  before(async () => {
    agent = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: stack.upstream.url, relayCache: true }], record: true, events })
    host = `${agent.tunnels[0]!.publicName}.localhost`
    stackCached = { ...stack, host }
  })
  after(() => agent.close())

  it('answers a fresh response from the cache without the upstream, GET and HEAD, with Cache-Status and Age', async () => {
    const first = await get(stackCached, '/static')
    assert.equal(first.status, 200)
    assert.equal(first.cacheStatus, 'gw; fwd=miss; stored')
    const second = await get(stackCached, '/static')
    assert.equal(second.status, 200)
    assert.equal(second.body, first.body)
    assert.match(second.cacheStatus, /^gw; hit; ttl=(59|60)$/)
    assert.ok(second.headers.age !== undefined, 'a hit carries Age')
    assert.equal(second.headers['content-length'], String(Buffer.byteLength(first.body)))
    const head = await get(stackCached, '/static', {}, 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.body, '')
    assert.match(head.cacheStatus, /^gw; hit/)
    assert.equal(count(seen, 'GET /static'), 1, 'the upstream saw only the first request')
    assert.equal(count(seen, 'HEAD /static'), 0)
    // The agent's inspector and request log still see the hits: the relay tells the agent.
    await waitFor(() => exchanges.filter((x) => x.request.target === '/static').length === 3, 10_000, 'three /static exchanges')
    const hits = exchanges.filter((x) => x.request.target === '/static' && x.response?.rawHeaders.some((h) => h.startsWith('gw; hit')))
    assert.deepEqual(hits.map((x) => x.request.method), ['GET', 'HEAD'])
    assert.equal(hits[0]!.tunnel, 'command_line')
    assert.equal(hits[0]!.response!.status, 200)
    assert.equal(hits[0]!.bytesOut, Buffer.byteLength(first.body))
    // The client's own conditional request is answered 304 from the cache.
    const conditional = await get(stackCached, '/static', { 'if-none-match': '"s1"' })
    assert.equal(conditional.status, 304)
    assert.equal(conditional.body, '')
    assert.equal(count(seen, 'GET /static'), 1)
    // Another query string is another resource.
    await get(stackCached, '/static?v=2')
    assert.equal(count(seen, 'GET /static?v=2'), 1)
  })

  it('keeps names apart, and an endpoint that did not ask for the cache is never cached', async () => {
    // startStack's own agent (no --relay-cache) serves the same upstream under another name.
    const a = await get(stack, '/public')
    const b = await get(stack, '/public')
    assert.equal(a.cacheStatus, '')
    assert.equal(b.cacheStatus, '')
    assert.equal(count(seen, 'GET /public'), 2)
    // A second cached tunnel with its own upstream: the first tunnel's entry is not its answer.
    const other = await startUpstream((_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end('the other tenant')
    })
    const otherAgent = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: other.url, relayCache: true }] })
    try {
      const otherHost = `${otherAgent.tunnels[0]!.publicName}.localhost`
      await get(stackCached, '/static')
      const res = await get(stackCached, '/static', {}, 'GET', otherHost)
      assert.equal(res.body, 'the other tenant')
      assert.equal(res.cacheStatus, 'gw; fwd=miss; stored')
    } finally {
      await otherAgent.close()
      await other.close()
    }
  })

  it('never stores no-store or private responses, nor Set-Cookie ones unless public', async () => {
    for (const path of ['/no-store', '/private', '/cookie']) {
      const first = await get(stackCached, path)
      const second = await get(stackCached, path)
      assert.equal(first.cacheStatus, 'gw; fwd=miss', path)
      assert.equal(second.cacheStatus, 'gw; fwd=miss', path)
      assert.equal(count(seen, `GET ${path}`), 2, `${path} reached the upstream twice`)
    }
    // public says a shared cache may keep it, Set-Cookie and all.
    assert.equal((await get(stackCached, '/public-cookie')).cacheStatus, 'gw; fwd=miss; stored')
    const reused = await get(stackCached, '/public-cookie')
    assert.match(reused.cacheStatus, /^gw; hit/)
    assert.equal(reused.body, 'public cookie body')
    assert.equal(count(seen, 'GET /public-cookie'), 1)
  })

  it('Authorization and cookies: never stored or answered from the cache unless the response allows it', async () => {
    // max-age alone does not allow a shared cache to store an authenticated response (RFC 9111 §3.5).
    await get(stackCached, '/static?auth', { authorization: 'Bearer alice' })
    const anonymous = await get(stackCached, '/static?auth')
    assert.equal(anonymous.cacheStatus, 'gw; fwd=miss; stored')
    assert.equal(count(seen, 'GET /static?auth'), 2)
    // Stored from an anonymous request, it is still not the answer for one with credentials.
    const withAuth = await get(stackCached, '/static?auth', { authorization: 'Bearer bob' })
    assert.equal(withAuth.cacheStatus, 'gw; fwd=bypass; detail=authorization')
    const withCookie = await get(stackCached, '/static?auth', { cookie: 'sid=1' })
    assert.equal(withCookie.cacheStatus, 'gw; fwd=bypass; detail=cookie')
    assert.equal(count(seen, 'GET /static?auth'), 4)
    // public says so: stored from an authenticated request, and reused for one.
    assert.equal((await get(stackCached, '/public', { authorization: 'Bearer alice' })).cacheStatus, 'gw; fwd=miss; stored')
    const reused = await get(stackCached, '/public', { authorization: 'Bearer carol' })
    assert.match(reused.cacheStatus, /^gw; hit/)
    assert.equal(count(seen, 'GET /public'), 3, 'two from the uncached tunnel, one here')
  })

  it('stores one variant per Vary value', async () => {
    assert.equal((await get(stackCached, '/vary', { 'accept-language': 'en' })).body, 'lang en')
    const fr = await get(stackCached, '/vary', { 'accept-language': 'fr' })
    assert.equal(fr.body, 'lang fr')
    assert.equal(fr.cacheStatus, 'gw; fwd=vary-miss; stored')
    const en = await get(stackCached, '/vary', { 'accept-language': 'en' })
    assert.equal(en.body, 'lang en')
    assert.match(en.cacheStatus, /^gw; hit/)
    assert.equal((await get(stackCached, '/vary', { 'accept-language': 'fr' })).body, 'lang fr')
    assert.equal(count(seen, 'GET /vary'), 2)
  })

  it('counts Age from the age the response already had: a hit says Age 100 or more, and the freshness left', async () => {
    assert.equal((await get(stackCached, '/aged')).cacheStatus, 'gw; fwd=miss; stored')
    const hit = await get(stackCached, '/aged')
    assert.equal(hit.body, 'aged body')
    const age = Number(hit.headers.age)
    assert.ok(age >= 100 && age < 160, `Age ${String(hit.headers.age)}`)
    const ttl = Number(/ttl=(\d+)/.exec(hit.cacheStatus)?.[1])
    assert.ok(ttl <= 60 && ttl >= 50, `Cache-Status ${hit.cacheStatus}: 160 s of freshness less the 100 it had`)
    assert.equal(count(seen, 'GET /aged'), 1)
  })

  it('revalidates a stale response with the agent: ETag and Last-Modified, the 304 answered from the cache', async () => {
    const first = await get(stackCached, '/etag')
    assert.equal(first.cacheStatus, 'gw; fwd=miss; stored')
    const second = await get(stackCached, '/etag')
    assert.equal(second.status, 200)
    assert.equal(second.body, 'etag body')
    assert.equal(second.cacheStatus, 'gw; fwd=stale; fwd-status=304')
    const etagSeen = seen.get('GET /etag')!
    assert.equal(etagSeen.count, 2)
    assert.equal(etagSeen.headers[1]!['if-none-match'], '"e1"', 'the relay asked with the stored ETag')
    // The client's own validator: the relay's revalidation answers it with 304.
    const conditional = await get(stackCached, '/etag', { 'if-none-match': '"e1"' })
    assert.equal(conditional.status, 304, JSON.stringify(conditional.headers))

    await get(stackCached, '/lastmod')
    const again = await get(stackCached, '/lastmod')
    assert.equal(again.body, 'lastmod body')
    assert.equal(again.cacheStatus, 'gw; fwd=stale; fwd-status=304')
    assert.equal(seen.get('GET /lastmod')!.headers[1]!['if-modified-since'], 'Tue, 01 Dec 2026 10:00:00 GMT')
    // Cache-Control: no-cache from the client forces the same revalidation.
    const forced = await get(stackCached, '/static?forced')
    assert.equal(forced.cacheStatus, 'gw; fwd=miss; stored')
    const reload = await get(stackCached, '/static?forced', { 'cache-control': 'no-cache' })
    assert.equal(reload.cacheStatus, 'gw; fwd=request; fwd-status=200; stored', 'the upstream gave a full answer, not a 304')
    assert.equal(seen.get('GET /static?forced')!.headers[1]!['if-none-match'], '"s1"')
  })

  it('an unsafe method passes through and drops the stored response; a response over the entry limit is not stored', async () => {
    await get(stackCached, '/static?post')
    assert.match((await get(stackCached, '/static?post')).cacheStatus, /^gw; hit/)
    const post = await get(stackCached, '/static?post', {}, 'POST')
    assert.equal(post.cacheStatus, 'gw; fwd=method')
    assert.equal((await get(stackCached, '/static?post')).cacheStatus, 'gw; fwd=miss; stored')
    assert.equal(count(seen, 'GET /static?post'), 2)

    assert.equal((await get(stackCached, '/huge')).body.length, 100_000)
    assert.equal((await get(stackCached, '/huge')).body.length, 100_000)
    assert.equal(count(seen, 'GET /huge'), 2, 'a 100 kB body is over the 64 KiB entry limit')
  })

  it('counts hits, misses and bytes in /metrics, and drops a name\'s entries when its agent leaves', async () => {
    const url = stack.relay.metricsUrl!
    const hits = await metric(url, 'gw_relay_cache_requests_total', { result: 'hit' })
    await get(stackCached, '/static')
    assert.equal(await metric(url, 'gw_relay_cache_requests_total', { result: 'hit' }), hits + 1)
    assert.ok(await metric(url, 'gw_relay_cache_requests_total', { result: 'miss' }) > 0, await (await request(url)).body.text())
    assert.ok(await metric(url, 'gw_relay_cache_requests_total', { result: 'revalidated' }) >= 2)
    assert.ok(await metric(url, 'gw_relay_cache_requests_total', { result: 'bypass' }) >= 3)
    assert.ok(await metric(url, 'gw_relay_cache_served_bytes_total') > 0)
    assert.ok(await metric(url, 'gw_relay_cache_bytes') > 0)
    assert.ok(await metric(url, 'gw_relay_cache_entries') > 0)
    // The access log says what the cache did, under the request id the agent would show.
    await waitFor(() => readFileSync(accessLog, 'utf8').includes('"cache":"revalidated"'), 10_000, 'access log lines')
    const lines = readFileSync(accessLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { path: string; cache?: string; request_id: string })
    const hitLine = lines.find((l) => l.path === '/static' && l.cache === 'hit')
    assert.ok(hitLine && /^req_/.test(hitLine.request_id))
    await waitFor(() => exchanges.some((x) => x.id === hitLine.request_id), 10_000, 'the hit in the agent\'s records, under the access log\'s id')
    assert.ok(lines.some((l) => l.path === '/static' && l.cache === 'miss'))
    assert.ok(lines.some((l) => l.cache === 'bypass'))

    await agent.close()
    await waitFor(async () => (await metric(url, 'gw_relay_cache_entries')) === 0, 10_000, 'the entries purged')
    assert.equal(await metric(url, 'gw_relay_cache_bytes'), 0)
  })
})

describe('relay cache bounds', () => {
  it('evicts the least recently used responses to stay within its size', async (t) => {
    let calls = 0
    const stack = await startStack((req, res) => {
      calls++
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end(Buffer.alloc(40_000, (req.url ?? '').slice(-1)))
    }, { relay: { relayCache: { maxBytes: 100_000, maxEntryBytes: 50_000 }, metricsAddr: '127.0.0.1:0' } })
    t.after(() => stack.close())
    const agent = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: stack.upstream.url, relayCache: true }] })
    t.after(() => agent.close())
    const cached = { ...stack, host: `${agent.tunnels[0]!.publicName}.localhost` }
    await get(cached, '/1')
    await get(cached, '/2')
    assert.match((await get(cached, '/1')).cacheStatus, /^gw; hit/, 'two 40 kB bodies fit in 100 kB')
    await get(cached, '/3') // evicts /2, the least recently used
    assert.equal(calls, 3)
    assert.match((await get(cached, '/1')).cacheStatus, /^gw; hit/)
    assert.match((await get(cached, '/3')).cacheStatus, /^gw; hit/)
    assert.equal((await get(cached, '/2')).cacheStatus, 'gw; fwd=miss; stored')
    assert.equal(calls, 4)
    const url = stack.relay.metricsUrl!
    assert.ok(await metric(url, 'gw_relay_cache_evictions_total') >= 1)
    assert.ok(await metric(url, 'gw_relay_cache_bytes') <= 100_000)
  })

  it('a relay without a cache says so to an agent that asks; gw http refuses the cache with request rules', async (t) => {
    let calls = 0
    const stack = await startStack((_req, res) => {
      calls++
      res.writeHead(200, { 'cache-control': 'max-age=60' }).end('x')
    })
    t.after(() => stack.close())
    const agent = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: stack.upstream.url, relayCache: true }] })
    t.after(() => agent.close())
    const cached = { ...stack, host: `${agent.tunnels[0]!.publicName}.localhost` }
    assert.equal((await get(cached, '/')).cacheStatus, '')
    await get(cached, '/')
    assert.equal(calls, 2)

    const gw = spawnGw(['http', '9', '--relay-cache', '--basic-auth', 'a:b', '--no-tui', '--relay', stack.relay.httpUrl!])
    const code = await gw.exited
    assert.notEqual(code, 0)
    assert.match(gw.stderr(), /--relay-cache with on_http_request rules: .*would not run/)
  })
})

describe('relay cache settings', () => {
  it('relay_cache and relay_cache_max_entry in the config file; a bad size names the key and the fix', () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'relay.yml')
      writeFileSync(file, 'domain: tunnel.example.com\nrelay_cache: 256MB\nrelay_cache_max_entry: 1MiB\n')
      assert.deepEqual(loadRelayConfig(file).settings.relayCache, { maxBytes: 256_000_000, maxEntryBytes: 1024 * 1024 })
      writeFileSync(file, 'domain: tunnel.example.com\nrelay_cache: lots\n')
      assert.throws(() => loadRelayConfig(file), /relay_cache: "lots" is not a size; give bytes, e\.g\. 268435456, 256MB or 1GiB/)
      writeFileSync(file, 'domain: tunnel.example.com\nrelay_cache_max_entry: 1MB\n')
      assert.throws(() => loadRelayConfig(file), /relay_cache_max_entry: .* needs relay_cache/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('gw relay --relay-cache refuses what is not a size', async () => {
    const gw = spawnGw(['relay', '--domain', 'localhost', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--relay-cache', 'big'])
    assert.notEqual(await gw.exited, 0)
    assert.match(gw.stderr(), /--relay-cache "big" is not a size/)
  })
})
