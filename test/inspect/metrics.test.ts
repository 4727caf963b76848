import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AgentEvents } from '@gw/cli/agent/events'
import { createMetrics } from '@gw/cli/inspect/metrics'
import { endExchange, simulateExchange, startExchange } from './helpers.js'

test('counts, gauge, bytes and percentiles in ngrok units (ns)', () => {
  const events = new AgentEvents()
  let now = 1_000_000
  const metrics = createMetrics(events, () => now)
  const open = startExchange(events, { at: now })
  for (let i = 1; i <= 100; i++) simulateExchange(events, { at: now, durationMs: i, requestBody: 'ab', responseBody: 'abcd' })
  let snap = metrics.snapshot()
  assert.equal(snap.conns.count, 101)
  assert.equal(snap.conns.gauge, 1)
  assert.equal(snap.http.count, 100)
  assert.equal(snap.bytes.in, 200)
  assert.equal(snap.bytes.out, 400)
  assert.ok(Math.abs(snap.http.p50 - 50.5e6) < 1e6, `p50 ${snap.http.p50}`)
  assert.ok(Math.abs(snap.http.p90 - 90.9e6) < 1e6, `p90 ${snap.http.p90}`)
  assert.ok(snap.http.p99 <= 100e6 && snap.http.p99 > 98e6)
  assert.equal(snap.http.rate1, 0, 'no tick has passed yet')
  now += 5000
  snap = metrics.snapshot()
  // 100 requests in the first 5 s tick: 20 per second.
  assert.equal(snap.http.rate1, 20)
  assert.equal(snap.http.rate5, 20)
  now += 60_000
  assert.ok(metrics.snapshot().http.rate1 < 20 * Math.exp(-1) + 0.5, 'the 1-minute rate decays')
  endExchange(events, open, now)
  assert.equal(metrics.snapshot().conns.gauge, 0)
  assert.equal(metrics.snapshot('command_line').conns.count, 101)
  assert.equal(metrics.snapshot('other').conns.count, 0)
  metrics.close()
  assert.equal(events.listenerCount('exchange:start'), 0)
})

test('WebSockets count as conns, not http', () => {
  const events = new AgentEvents()
  const metrics = createMetrics(events)
  simulateExchange(events, { status: 101, websocket: { messagesIn: 1, messagesOut: 1 } })
  const snap = metrics.snapshot()
  assert.equal(snap.conns.count, 1)
  assert.equal(snap.http.count, 0)
})
