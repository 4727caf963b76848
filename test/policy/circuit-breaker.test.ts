import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compilePolicy, createPolicyState } from '@gw/cli/policy/index'
import { makeRequest, makeResponse, header } from './helpers.js'

test('circuit-breaker trips on errors over the volume threshold, answers 503, probes after tripped_duration', async () => {
  let now = 0
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'circuit-breaker', config: {
    error_threshold: 0.5, volume_threshold: 4, window_duration: '10s', tripped_duration: '5s',
  } }] }] }, { now: () => now })
  async function roundTrip(upstreamStatus: number): Promise<number> {
    const state = createPolicyState()
    const req = makeRequest()
    const out = await policy.onHttpRequest(req, state)
    if (out.kind === 'respond') return out.response.status
    const res = await policy.onHttpResponse(req, makeResponse(upstreamStatus), state)
    return res.status
  }
  assert.equal(await roundTrip(200), 200)
  assert.equal(await roundTrip(500), 500)
  assert.equal(await roundTrip(502), 502)
  assert.equal(await roundTrip(503), 503) // 3 of 4 failed: trips now
  const state = createPolicyState()
  const out = await policy.onHttpRequest(makeRequest(), state)
  assert.equal(out.kind, 'respond')
  if (out.kind !== 'respond') return
  assert.equal(out.response.status, 503)
  assert.equal(header(out.response.rawHeaders, 'retry-after'), '5')
  assert.deepEqual(out.verdict, { action: 'circuit-breaker', rule: undefined, status: 503 })

  now += 5_000 // half-open: one probe goes through and fails → open again
  assert.equal(await roundTrip(500), 500)
  assert.equal(await roundTrip(200), 503)
  now += 5_000 // the next probe succeeds → closed
  assert.equal(await roundTrip(200), 200)
  assert.equal(await roundTrip(200), 200)
  assert.equal(await roundTrip(500), 500, 'a single error after closing does not trip it')
  assert.equal(await roundTrip(200), 200)
  await policy.close()
})

test('circuit-breaker errors in the old window are forgotten', async () => {
  let now = 0
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'circuit-breaker', config: { volume_threshold: 2, window_duration: '10s' } }] }] }, { now: () => now })
  const trip = async (s: number) => {
    const state = createPolicyState()
    const req = makeRequest()
    const out = await policy.onHttpRequest(req, state)
    if (out.kind === 'respond') return out.response.status
    return (await policy.onHttpResponse(req, makeResponse(s), state)).status
  }
  assert.equal(await trip(500), 500)
  now += 11_000
  assert.equal(await trip(500), 500, 'only one error in the window: no trip')
  assert.equal(await trip(200), 200)
  await policy.close()
})
