import { it } from 'node:test'
import assert from 'node:assert/strict'
import { Pool } from 'undici'
import { compilePolicy } from '@gw/cli/policy/index'
import { startStack } from '../helpers/stack.js'

it('counts refused upstream connections in a circuit breaker, which then answers 503', async () => {
  const policy = compilePolicy({
    on_http_request: [{ actions: [{ type: 'circuit-breaker', config: { error_threshold: 0.5, volume_threshold: 3, window_duration: '10s', tripped_duration: '30s' } }] }],
  })
  const stack = await startStack((_req, res) => res.end('up'), {})
  const agent = await (await import('@gw/cli/agent/agent')).startAgent({
    relay: stack.relay.httpUrl!,
    endpoints: [{ upstream: stack.upstream.url, policy }],
  })
  const host = `${agent.tunnels[0]!.publicName}.localhost`
  const pool = new Pool(stack.httpOrigin)
  try {
    await stack.upstream.close()
    const codes: Array<[number, string | undefined]> = []
    for (let i = 0; i < 5; i++) {
      const res = await pool.request({ path: '/', method: 'GET', headers: { host } })
      await res.body.text()
      codes.push([res.statusCode, res.headers['gw-error-code'] as string | undefined])
    }
    assert.deepEqual(codes.slice(0, 3), Array(3).fill([502, 'GW_ERR_UPSTREAM_REFUSED']))
    assert.deepEqual(codes.slice(3).map(([status]) => status), [503, 503])
  } finally {
    await pool.close()
    await agent.close()
    await stack.close()
  }
})
