import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import { compilePolicy, createPolicyState, type CompiledPolicy } from '@gw/cli/policy/index'
import { makeRequest, makeResponse, header } from './helpers.js'

async function hit(policy: CompiledPolicy, ip = '198.51.100.1') {
  const state = createPolicyState()
  const req = makeRequest({ clientIp: ip })
  const outcome = await policy.onHttpRequest(req, state)
  return { outcome, state, req }
}

function status(o: Awaited<ReturnType<typeof hit>>['outcome']): number {
  return o.kind === 'respond' ? o.response.status : 200
}

test('sliding_window: 429 with Retry-After and RateLimit-* over capacity, per bucket key, on a fake clock', async () => {
  let now = 1_700_000_000_000 - (1_700_000_000_000 % 60_000) // the start of a window
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: {
    name: 'per-ip', algorithm: 'sliding_window', capacity: 3, rate: '60s', bucket_key: ['conn.client_ip'],
  } }] }] }, { now: () => now })
  for (let i = 0; i < 3; i++) assert.equal(status((await hit(policy)).outcome), 200)
  const limited = await hit(policy)
  assert.equal(limited.outcome.kind, 'respond')
  if (limited.outcome.kind !== 'respond') return
  const h = limited.outcome.response.rawHeaders
  assert.equal(limited.outcome.response.status, 429)
  // The next window starts at 60s; there the full previous window must decay to 2/3 (capacity - 1), 20s more.
  assert.equal(header(h, 'retry-after'), '80')
  assert.equal(header(h, 'ratelimit-limit'), '3')
  assert.equal(header(h, 'ratelimit-remaining'), '0')
  assert.equal(header(h, 'ratelimit-policy'), '3;w=60')
  assert.deepEqual(limited.outcome.verdict, { action: 'rate-limit', rule: undefined, status: 429 })
  assert.equal(limited.state.actions.ngrok && (limited.state.actions.ngrok as any).rate_limit.limited, true)
  // Another client has its own bucket.
  assert.equal(status((await hit(policy, '198.51.100.2')).outcome), 200)
  // 30s into the next window, the previous window still weighs half: 3 * 0.5 = 1.5 → one more fits.
  now += 90_000
  assert.equal(status((await hit(policy)).outcome), 200)
  assert.equal(status((await hit(policy)).outcome), 429)
  // Two windows later everything is forgotten.
  now += 120_000
  for (let i = 0; i < 3; i++) assert.equal(status((await hit(policy)).outcome), 200)
  await policy.close()
})

test('allowed responses carry RateLimit-* headers', async () => {
  const now = 0
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: { capacity: 5, rate: '10s', algorithm: 'token_bucket' } }] }] }, { now: () => now })
  const { state, req } = await hit(policy)
  const res = await policy.onHttpResponse(req, makeResponse(200), state)
  assert.equal(header(res.rawHeaders, 'ratelimit-limit'), '5')
  assert.equal(header(res.rawHeaders, 'ratelimit-remaining'), '4')
  await policy.close()
})

test('token_bucket: bursts to capacity, then refills evenly', async () => {
  let now = 0
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: {
    algorithm: 'token_bucket', capacity: 10, rate: '10s', bucket_key: ['conn.client_ip', "getReqHeader('x-tenant')"],
  } }] }] }, { now: () => now })
  for (let i = 0; i < 10; i++) assert.equal(status((await hit(policy)).outcome), 200)
  const over = await hit(policy)
  assert.equal(status(over.outcome), 429)
  if (over.outcome.kind === 'respond') assert.equal(header(over.outcome.response.rawHeaders, 'retry-after'), '1')
  now += 1_000 // one token back
  assert.equal(status((await hit(policy)).outcome), 200)
  assert.equal(status((await hit(policy)).outcome), 429)
  now += 5_000
  for (let i = 0; i < 5; i++) assert.equal(status((await hit(policy)).outcome), 200)
  assert.equal(status((await hit(policy)).outcome), 429)
  await policy.close()
})

test('mode: delay holds excess requests in order and releases them as the budget allows; beyond max_delay they get 429', async () => {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: {
    algorithm: 'token_bucket', capacity: 2, rate: '200ms', mode: 'delay', max_delay: '250ms',
  } }] }] })
  try {
    const order: number[] = []
    const pending = [0, 1, 2, 3, 4].map((i) => hit(policy).then((r) => {
      order.push(i)
      return status(r.outcome)
    }))
    await tick()
    // Two pass at once (the burst); the third and fourth wait (100ms and 200ms); the fifth
    // would wait 300ms > max_delay and is refused at once.
    assert.deepEqual(order.slice().sort(), [0, 1, 4])
    const statuses = await Promise.all(pending)
    assert.deepEqual(statuses, [200, 200, 200, 200, 429])
    assert.deepEqual(order, [0, 1, 4, 2, 3], 'delayed requests are released in arrival order')
  } finally {
    await policy.close()
  }
})

test('mode: delay with sliding_window', async () => {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: {
    algorithm: 'sliding_window', capacity: 3, rate: '150ms', mode: 'delay', max_delay: '2s',
  } }] }] })
  try {
    const statuses = await Promise.all([0, 1, 2, 3, 4].map(async () => status((await hit(policy)).outcome)))
    assert.deepEqual(statuses, [200, 200, 200, 200, 200])
  } finally {
    await policy.close()
  }
})

test('rate-limit config errors', () => {
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: { capacity: 0, rate: '60s' } }] }] }),
    /on_http_request\[0\]\.actions\[0\]\.config\.capacity: must be an integer from 1 to/)
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: { capacity: 5, rate: 'sixty' } }] }] }),
    /config\.rate: must be a duration such as "60s"/)
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: { capacity: 5, rate: '1m', algorithm: 'leaky' } }] }] }),
    /config\.algorithm: is not a known value: "leaky"; allowed values: sliding_window, token_bucket/)
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: { capacity: 5, rate: '1m', bucket_key: ['conn.client_ipp'] } }] }] }),
    /config\.bucket_key\[0\]: invalid CEL expression "conn\.client_ipp": No such key: client_ipp/)
})
