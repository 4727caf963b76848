import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { createUpstreamPool, UpstreamPoolDownError, parseTargetAddress } from '@gw/cli/upstream/index'
import { compilePolicy } from '@gw/cli/policy/index'
import { startPolicyGateway } from './tunnel-stack.js'

interface Target { server: Server; port: number; name: string; healthy: boolean; close(): Promise<void> }

async function startTarget(name: string): Promise<Target> {
  const t = { healthy: true } as Target
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.statusCode = t.healthy ? 200 : 503
      res.end()
      return
    }
    setTimeout(() => res.end(name), req.url === '/slow' ? 50 : 0)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  Object.assign(t, {
    server, name, port: (server.address() as AddressInfo).port,
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((r) => server.close(() => r()))
    },
  })
  return t
}

const open: Target[] = []
after(async () => {
  for (const t of open) if (t.server.listening) await t.close()
})

test('parseTargetAddress', () => {
  assert.deepEqual(parseTargetAddress('3001'), { origin: 'http://localhost:3001', protocol: 'http:', hostname: 'localhost', port: 3001, basePath: '' })
  assert.equal(parseTargetAddress('127.0.0.1:8080')?.origin, 'http://127.0.0.1:8080')
  assert.equal(parseTargetAddress('https://api.local/v2/')?.basePath, '/v2')
  assert.equal(parseTargetAddress('https://api.local')?.port, 443)
  assert.equal(parseTargetAddress('ftp://x'), undefined)
  assert.equal(parseTargetAddress('http://u:p@x'), undefined)
})

test('round_robin, least_requests and random pick among targets and skip excluded ones', () => {
  const rr = createUpstreamPool({ name: 'rr', targets: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'] })
  const picks = [0, 1, 2, 3, 4, 5].map(() => {
    const t = rr.pick()
    rr.release(t, 'ok')
    return t.port
  })
  assert.deepEqual(picks, [1, 2, 3, 1, 2, 3])
  const a = rr.pick()
  assert.notEqual(rr.pick(a).port, a.port)

  const lr = createUpstreamPool({ name: 'lr', targets: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], strategy: 'least_requests' })
  const busy1 = lr.pick()
  const busy2 = lr.pick()
  const third = lr.pick()
  assert.equal(new Set([busy1.port, busy2.port, third.port]).size, 3, 'spreads while all are idle')
  lr.release(busy2, 'ok')
  assert.equal(lr.pick().port, busy2.port, 'the target with fewest in flight wins')

  let r = 0
  const rnd = createUpstreamPool({ name: 'rnd', targets: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], strategy: 'random', random: () => [0.1, 0.5, 0.9][r++ % 3]! })
  assert.deepEqual([rnd.pick().port, rnd.pick().port, rnd.pick().port], [1, 2, 3])
})

test('passive ejection with back-off, and 502 when the whole pool is down', () => {
  let now = 0
  const events: string[] = []
  const pool = createUpstreamPool({
    name: 'api', targets: ['127.0.0.1:1', '127.0.0.1:2'], clock: () => now, ejection: { baseMs: 1000, maxMs: 4000 },
    onEvent: (e) => events.push(`${e.kind} ${e.target} ${e.forMs}`),
  })
  const [a, b] = pool.targets
  pool.release(pool.pick(), 'connect-error') // a ejected for 1s
  assert.equal(a!.ejectedUntil, 1000)
  assert.equal(pool.pick().port, b!.port)
  now = 500
  pool.release(b!, 'connect-error') // b ejected until 1500
  assert.throws(() => pool.pick(), (err: unknown) => err instanceof UpstreamPoolDownError && err.status === 502 && /2 targets: 0 failing health checks, 2 ejected/.test(err.message))
  now = 1000
  const back = pool.pick()
  assert.equal(back.port, a!.port, 'a is back after its back-off')
  pool.release(back, 'connect-error') // second failure in a row: 2s
  assert.equal(a!.ejectedUntil, 3000)
  now = 3000
  const again = pool.pick()
  pool.release(again, 'ok')
  assert.equal(again.ejectedUntil, 0, 'a success resets the back-off')
  assert.deepEqual(events, ['ejected api#0 1000', 'ejected api#1 1000', 'ejected api#0 2000'])
})

test('active health checks take a failing target out and put it back', async () => {
  const [t1, t2] = [await startTarget('one'), await startTarget('two')]
  open.push(t1, t2)
  const pool = createUpstreamPool({
    name: 'hc', targets: [`127.0.0.1:${t1.port}`, `127.0.0.1:${t2.port}`],
    healthCheck: { path: '/healthz', intervalMs: 60_000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 1 },
  })
  try {
    t1.healthy = false
    await pool.checkHealth()
    assert.equal(pool.targets[0]!.healthy, false)
    for (let i = 0; i < 4; i++) {
      const t = pool.pick()
      assert.equal(t.port, t2.port)
      pool.release(t, 'ok')
    }
    t1.healthy = true
    await pool.checkHealth()
    assert.equal(pool.targets[0]!.healthy, true)
  } finally {
    pool.close()
  }
})

test('load balancing across three targets through the forward action, with one killed mid-test', async () => {
  const targets = [await startTarget('a'), await startTarget('b'), await startTarget('c')]
  open.push(...targets)
  const policy = compilePolicy({
    upstreams: { api: { targets: targets.map((t) => `127.0.0.1:${t.port}`), strategy: 'round_robin' } },
    on_http_request: [{ expressions: ["req.url.path.startsWith('/api')"], actions: [{ type: 'forward', config: { upstream: 'api' } }] }],
  })
  const gateway = await startPolicyGateway(policy, 'http://127.0.0.1:9')
  try {
    const get = async () => {
      const res = await request(`${gateway.url}/api/x`)
      return { status: res.statusCode, body: await res.body.text(), code: res.headers['gw-error-code'] }
    }
    const first = await Promise.all([0, 1, 2, 3, 4, 5].map(get))
    assert.deepEqual(first.map((r) => r.body).sort(), ['a', 'a', 'b', 'b', 'c', 'c'])
    await targets[1]!.close() // kill b
    const after = []
    for (let i = 0; i < 9; i++) after.push(await get())
    // Every GET still succeeds: the one that hit b was retried on another target, and b is ejected.
    assert.ok(after.every((r) => r.status === 200), JSON.stringify(after))
    assert.ok(after.every((r) => r.body !== 'b'))
    assert.ok(after.some((r) => r.body === 'a') && after.some((r) => r.body === 'c'))
    assert.ok(policy.upstreams.get('api')!.targets[1]!.ejectedUntil > 0)
    await targets[0]!.close()
    await targets[2]!.close()
    const down = await get()
    assert.equal(down.status, 502)
    const again = await get()
    assert.equal(again.status, 502)
    assert.equal(again.code, 'GW_ERR_UPSTREAM_POOL_DOWN')
  } finally {
    await gateway.close()
  }
})

test('forward config errors name the known pools', () => {
  assert.throws(() => compilePolicy({ upstreams: { api: { targets: ['localhost:3001'] } }, on_http_request: [{ actions: [{ type: 'forward', config: { upstream: 'apii' } }] }] }),
    /on_http_request\[0\]\.actions\[0\]\.config\.upstream: no upstream named "apii"; allowed values: api/)
  assert.throws(() => compilePolicy({ upstreams: { api: { targets: ['localhost:3001'], strategy: 'fastest' } } }),
    /upstreams\.api\.strategy: is not a known value: "fastest"; allowed values: round_robin, least_requests, random/)
  assert.throws(() => compilePolicy({ upstreams: { api: { targets: ['ftp://x'] } } }), /upstreams\.api\.targets: .*not a valid address/)
})

test('sendWithRetry: one retry elsewhere for a connection error; the connection error when there is nowhere else', async () => {
  const { sendWithRetry } = await import('@gw/cli/upstream/index')
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  const pool = createUpstreamPool({ name: 'r', targets: ['127.0.0.1:1', '127.0.0.1:2'] })
  const tried: number[] = []
  const sent = await sendWithRetry(pool, true, async (t) => {
    tried.push(t.port)
    if (t.port === 1) throw refused
    return 'ok'
  })
  assert.deepEqual([tried, sent.value, sent.target.port], [[1, 2], 'ok', 2])
  pool.release(sent.target, 'ok')
  // Not retryable (a streamed body): the error comes back as it is.
  await assert.rejects(sendWithRetry(pool, false, async (t) => {
    if (t.port === 2) throw refused
    return 'ok'
  }, pool.targets[1]), /ECONNREFUSED/)
  // Target 1 and 2 are now ejected... give the pool a fresh state: a one-target-left case.
  const two = createUpstreamPool({ name: 'two', targets: ['127.0.0.1:1', '127.0.0.1:2'] })
  two.release(two.pick(), 'connect-error') // target 1 ejected
  await assert.rejects(sendWithRetry(two, true, async () => {
    throw refused
  }), (err: unknown) => err === refused)
  assert.equal(two.targets.every((t) => t.inflight === 0), true, 'every pick was released')
})
