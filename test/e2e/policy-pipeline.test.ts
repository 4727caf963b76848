import { it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { gunzipSync } from 'node:zlib'
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

/** A relay, an agent with `policy` and an upstream answering `handler`. */
async function withPolicy(
  policyDoc: Parameters<typeof compilePolicy>[0],
  handler: Parameters<typeof startStack>[0],
  run: (pool: Pool, host: string) => Promise<void>,
): Promise<void> {
  const policy = compilePolicy(policyDoc)
  const stack = await startStack(handler, {})
  const agent = await (await import('@gw/cli/agent/agent')).startAgent({
    relay: stack.relay.httpUrl!,
    endpoints: [{ upstream: stack.upstream.url, policy }],
  })
  const pool = new Pool(stack.httpOrigin)
  try {
    await run(pool, `${agent.tunnels[0]!.publicName}.localhost`)
  } finally {
    await pool.close()
    await agent.close()
    await stack.close()
  }
}

const BIG = randomBytes(4 * 1024 * 1024)

it('streams a body no response rule reads: headers changed, 4 MiB and trailers intact', async () => {
  // compress-response finds no Accept-Encoding and leaves the body alone, so the body
  // goes from the upstream socket to the relay without a Readable in between.
  await withPolicy({
    on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-policy': 'seen' } } }, { type: 'compress-response' }] }],
  }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-sum' })
    res.write(BIG.subarray(0, 1024 * 1024))
    setTimeout(() => {
      res.addTrailers({ 'x-sum': createHash('sha256').update(BIG).digest('hex') })
      res.end(BIG.subarray(1024 * 1024))
    }, 20)
  }, async (pool, host) => {
    const res = await pool.request({ path: '/big', method: 'GET', headers: { host } })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['x-policy'], 'seen')
    const got = Buffer.from(await res.body.arrayBuffer())
    assert.ok(got.equals(BIG), `the body arrived intact (${got.length} bytes)`)
    assert.equal(res.trailers['x-sum'], createHash('sha256').update(BIG).digest('hex'))
  })
})

it('still hands the body to a response rule that reads it: compressed when the client accepts gzip', async () => {
  await withPolicy({
    on_http_response: [{ actions: [{ type: 'compress-response' }] }],
  }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(BIG.toString('hex').slice(0, 1024 * 1024))
  }, async (pool, host) => {
    const res = await pool.request({ path: '/text', method: 'GET', headers: { host, 'accept-encoding': 'gzip' } })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-encoding'], 'gzip')
    const text = gunzipSync(Buffer.from(await res.body.arrayBuffer())).toString()
    assert.equal(text, BIG.toString('hex').slice(0, 1024 * 1024))
  })
})

it('aborts the upstream call when the client goes away while a body streams past the response rules', async () => {
  let upstreamClosed!: () => void
  const closed = new Promise<void>((resolve) => { upstreamClosed = resolve })
  await withPolicy({
    on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-policy': 'seen' } } }] }],
  }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    const timer = setInterval(() => res.write(BIG.subarray(0, 64 * 1024)), 5)
    res.on('close', () => {
      clearInterval(timer)
      upstreamClosed()
    })
  }, async (pool, host) => {
    const controller = new AbortController()
    const res = await pool.request({ path: '/endless', method: 'GET', headers: { host }, signal: controller.signal })
    assert.equal(res.headers['x-policy'], 'seen')
    for await (const chunk of res.body) {
      if (chunk.length > 0) break
    }
    controller.abort()
    await closed // the upstream's response is closed: the agent let go of it
  })
})
