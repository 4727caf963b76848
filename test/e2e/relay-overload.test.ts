/**
 * A relay whose link to an agent holds as many streams as it may: the next public
 * request gets 503 GW_ERR_RELAY_OVERLOADED (try again), not "the agent is offline".
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { Pool } from 'undici'
import { startStack } from '../helpers/stack.js'

it('answers 503 GW_ERR_RELAY_OVERLOADED when the agent link is at its stream limit', async () => {
  const held: Array<() => void> = []
  // The control stream is one of the two: one request may be in flight.
  const stack = await startStack((_req, res) => held.push(() => res.end('done')), { relay: { maxStreamsPerAgent: 2 } })
  const pool = new Pool(stack.httpOrigin, { connections: 4 })
  try {
    const first = pool.request({ path: '/slow', method: 'GET', headers: { host: stack.host } })
    while (held.length === 0) await new Promise((r) => setTimeout(r, 20))
    const second = await pool.request({ path: '/next', method: 'GET', headers: { host: stack.host } })
    const text = await second.body.text()
    assert.equal(second.statusCode, 503)
    assert.equal(second.headers['gw-error-code'], 'GW_ERR_RELAY_OVERLOADED')
    assert.match(text, /cannot take a new request/)
    held.shift()!()
    const res = await first
    assert.equal(res.statusCode, 200)
    assert.equal(await res.body.text(), 'done')
  } finally {
    for (const release of held) release()
    await pool.close()
    await stack.close()
  }
})
