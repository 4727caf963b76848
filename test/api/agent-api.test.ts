import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { AgentEvents } from '@gw/cli/agent/events'
import { startAgentApi } from '@gw/cli/api/server'
import { createCapture } from '@gw/cli/inspect/capture'
import { createMetrics } from '@gw/cli/inspect/metrics'
import type { ReplayRequest } from '@gw/cli/inspect/replay'
import { agentStatus, call, simulateExchange, startExchange, tunnelInfo } from '../inspect/helpers.js'

async function setup(t: { after(fn: () => unknown): void }, options: { dbSize?: number; bodyLimit?: number; enabled?: boolean } = {}) {
  const events = new AgentEvents()
  const capture = createCapture(events, { bodyLimit: options.bodyLimit ?? 65536, dbSize: options.dbSize ?? 1e6, enabled: options.enabled ?? true })
  const metrics = createMetrics(events)
  const replays: { request: ReplayRequest; replayOf: string; tunnel: string }[] = []
  let status = agentStatus()
  const api = await startAgentApi({
    addr: '127.0.0.1:0',
    getStatus: () => status,
    capture,
    metrics,
    events,
    replay: async (request, replayOf, tunnel) => {
      replays.push({ request, replayOf, tunnel })
      simulateExchange(events, { method: request.method, target: request.target, rawHeaders: request.rawHeaders, requestBody: request.body, replayOf, tunnel })
    },
  })
  t.after(() => api.close())
  return { events, capture, metrics, api, replays, port: api.port, setStatus: (s: typeof status) => (status = s) }
}

const JSON_HEADERS = { 'Content-Type': 'application/json' }

test('GET /api/tunnels answers in ngrok shape, https first', async (t) => {
  const { port, events } = await setup(t)
  simulateExchange(events, { durationMs: 10 })
  const res = await call(port, 'GET', '/api/tunnels')
  assert.equal(res.status, 200)
  assert.match(res.headers['content-type']!, /^application\/json/)
  const body = res.json()
  assert.equal(body.uri, '/api/tunnels')
  assert.equal(body.tunnels.length, 2)
  const [https, http] = body.tunnels
  assert.deepEqual(Object.keys(https), ['name', 'uri', 'public_url', 'proto', 'config', 'metrics'])
  assert.equal(https.name, 'command_line')
  assert.equal(https.uri, '/api/tunnels/command_line')
  assert.equal(https.public_url, 'https://demo.localhost:8443')
  assert.equal(https.proto, 'https')
  assert.deepEqual(https.config, { addr: 'http://localhost:3000', inspect: true })
  assert.deepEqual(Object.keys(https.metrics.conns), ['count', 'gauge', 'rate1', 'rate5', 'rate15', 'p50', 'p90', 'p95', 'p99'])
  assert.deepEqual(Object.keys(https.metrics.http), ['count', 'rate1', 'rate5', 'rate15', 'p50', 'p90', 'p95', 'p99'])
  assert.equal(https.metrics.http.count, 1)
  assert.equal(https.metrics.http.p50, 10e6)
  assert.equal(http.name, 'command_line (http)')
  assert.equal(http.proto, 'http')
  assert.equal(http.public_url, 'http://demo.localhost:8080')

  const one = await call(port, 'GET', '/api/tunnels/command_line%20(http)')
  assert.equal(one.status, 200)
  assert.equal(one.json().public_url, 'http://demo.localhost:8080')
  const missing = await call(port, 'GET', '/api/tunnels/nope')
  assert.equal(missing.status, 404)
  assert.equal(missing.json().error_code, 'GW_ERR_TUNNEL_UNKNOWN')
})

test('GET /api/requests/http lists captures in ngrok shape, with limit and tunnel_name', async (t) => {
  const { port, events, setStatus } = await setup(t)
  setStatus(agentStatus({ tunnels: [tunnelInfo(), tunnelInfo({ name: 'api', publicName: 'api', publicUrl: 'https://api.localhost', publicUrls: ['https://api.localhost'] })] }))
  const first = simulateExchange(events, {
    method: 'POST',
    target: '/hook?x=1',
    rawHeaders: ['Host', 'demo.localhost', 'content-type', 'application/json', 'X-A', '1', 'x-a', '2'],
    requestBody: '{"event":"paid"}',
    status: 201,
    responseHeaders: ['Content-Type', 'text/plain'],
    responseBody: 'created',
    durationMs: 7,
  })
  simulateExchange(events, { target: '/plain', scheme: 'http' })
  simulateExchange(events, { target: '/other', tunnel: 'api' })

  const all = (await call(port, 'GET', '/api/requests/http')).json()
  assert.equal(all.uri, '/api/requests/http')
  assert.deepEqual(all.requests.map((r: any) => r.request.uri), ['/other', '/plain', '/hook?x=1'])
  const r = all.requests[2]
  assert.deepEqual(
    Object.keys(r).filter((k) => k !== 'gw'),
    ['uri', 'id', 'tunnel_name', 'remote_addr', 'start', 'duration', 'request', 'response'],
  )
  assert.equal(r.uri, `/api/requests/http/${first.id}`)
  assert.equal(r.tunnel_name, 'command_line')
  assert.equal(r.remote_addr, '127.0.0.1')
  assert.ok(!Number.isNaN(Date.parse(r.start)))
  assert.equal(r.duration, 7e6)
  assert.equal(r.request.method, 'POST')
  assert.equal(r.request.proto, 'HTTP/1.1')
  assert.deepEqual(r.request.headers['X-A'], ['1', '2'])
  assert.deepEqual(r.request.headers['Content-Type'], ['application/json'])
  const raw = Buffer.from(r.request.raw, 'base64').toString()
  assert.ok(raw.startsWith('POST /hook?x=1 HTTP/1.1\r\nHost: demo.localhost\r\n'))
  assert.ok(raw.endsWith('\r\n\r\n{"event":"paid"}'))
  assert.equal(r.response.status, '201 Created')
  assert.equal(r.response.status_code, 201)
  assert.ok(Buffer.from(r.response.raw, 'base64').toString().endsWith('\r\n\r\ncreated'))
  assert.equal(r.gw.state, 'done')
  assert.equal(r.gw.replay_of, null)

  const limited = (await call(port, 'GET', '/api/requests/http?limit=1')).json()
  assert.equal(limited.requests.length, 1)
  const byApi = (await call(port, 'GET', '/api/requests/http?tunnel_name=api')).json()
  assert.deepEqual(byApi.requests.map((x: any) => x.request.uri), ['/other'])
  const byHttp = (await call(port, 'GET', `/api/requests/http?tunnel_name=${encodeURIComponent('command_line (http)')}`)).json()
  assert.deepEqual(byHttp.requests.map((x: any) => x.request.uri), ['/plain'])
  assert.equal(byHttp.requests[0].tunnel_name, 'command_line (http)')

  const one = await call(port, 'GET', `/api/requests/http/${first.id}`)
  assert.equal(one.status, 200)
  assert.equal(one.json().id, first.id)
  const missing = await call(port, 'GET', '/api/requests/http/nope')
  assert.equal(missing.status, 404)
  assert.equal(missing.json().error_code, 'GW_ERR_REQUEST_NOT_FOUND')
  assert.equal((await call(port, 'GET', '/api/requests/http?limit=abc')).status, 400)
})

test('an open request has response null', async (t) => {
  const { port, events } = await setup(t)
  const ex = startExchange(events, { target: '/slow' })
  const r = (await call(port, 'GET', `/api/requests/http/${ex.id}`)).json()
  assert.equal(r.response, null)
  assert.equal(r.duration, 0)
  assert.equal(r.gw.state, 'open')
})

test('POST /api/requests/http replays (204), with and without modifications', async (t) => {
  const { port, events, replays, capture } = await setup(t)
  const ex = simulateExchange(events, {
    method: 'POST',
    target: '/hook',
    rawHeaders: ['Host', 'demo.localhost', 'Content-Type', 'application/json', 'Transfer-Encoding', 'chunked'],
    requestBody: '{"a":1}',
  })
  const res = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: JSON.stringify({ id: ex.id }) })
  assert.equal(res.status, 204)
  assert.equal(replays.length, 1)
  assert.equal(replays[0]!.replayOf, ex.id)
  assert.equal(replays[0]!.tunnel, 'command_line')
  assert.equal(replays[0]!.request.body.toString(), '{"a":1}')
  // Chunked framing is replaced by the real length of the whole body.
  assert.deepEqual(replays[0]!.request.rawHeaders, ['Host', 'demo.localhost', 'Content-Type', 'application/json', 'Content-Length', '7'])
  const replayed = capture.list()[0]!
  assert.equal(replayed.exchange.replayOf, ex.id)

  const mod = await call(port, 'POST', '/api/requests/http', {
    headers: { 'Content-Type': 'application/json; charset=utf-8' },
    body: JSON.stringify({ id: ex.id, modifications: { method: 'PUT', target: '/hook?v=2', headers: [['X-Test', 'yes']], body: 'changed' } }),
  })
  assert.equal(mod.status, 204)
  assert.deepEqual(replays[1]!.request, { method: 'PUT', target: '/hook?v=2', rawHeaders: ['X-Test', 'yes', 'Content-Length', '7'], body: Buffer.from('changed') })

  // ngrok's tunnel_name: replay against another tunnel.
  const other = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: JSON.stringify({ id: ex.id, tunnel_name: 'command_line (http)' }) })
  assert.equal(other.status, 204)
  assert.equal(replays[2]!.tunnel, 'command_line')
  const unknownTunnel = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: JSON.stringify({ id: ex.id, tunnel_name: 'nope' }) })
  assert.equal(unknownTunnel.status, 404)
  assert.equal(unknownTunnel.json().error_code, 'GW_ERR_TUNNEL_UNKNOWN')

  const bad = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: JSON.stringify({ id: ex.id, modifications: { headers: [['Bad Name', 'x']] } }) })
  assert.equal(bad.status, 400)
  assert.equal(bad.json().error_code, 'GW_ERR_REPLAY_INVALID')
  const unknown = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: JSON.stringify({ id: 'nope' }) })
  assert.equal(unknown.status, 404)
  const broken = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: '{"id":' })
  assert.equal(broken.status, 400)
  assert.equal(broken.json().error_code, 'GW_ERR_API_BAD_REQUEST')
  const noId = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: '{}' })
  assert.equal(noId.status, 400)
})

test('a replay of a truncated body is refused with 409', async (t) => {
  const { port, events } = await setup(t, { bodyLimit: 4 })
  const ex = simulateExchange(events, { method: 'POST', requestBody: '0123456789' })
  const res = await call(port, 'POST', '/api/requests/http', { headers: JSON_HEADERS, body: JSON.stringify({ id: ex.id }) })
  assert.equal(res.status, 409)
  assert.equal(res.json().error_code, 'GW_ERR_REPLAY_BODY_TRUNCATED')
})

test('DELETE /api/requests/http clears (204)', async (t) => {
  const { port, events, capture } = await setup(t)
  simulateExchange(events, {})
  simulateExchange(events, {})
  assert.equal(capture.size, 2)
  const res = await call(port, 'DELETE', '/api/requests/http', { headers: JSON_HEADERS })
  assert.equal(res.status, 204)
  assert.equal(capture.size, 0)
  assert.deepEqual((await call(port, 'GET', '/api/requests/http')).json().requests, [])
})

test('DELETE /api/requests/http with no body and no Content-Type clears (204), as in ngrok', async (t) => {
  const { port, events, capture } = await setup(t)
  simulateExchange(events, {})
  const res = await call(port, 'DELETE', '/api/requests/http')
  assert.equal(res.status, 204)
  assert.equal(capture.size, 0)
})

test('POST without Content-Type: application/json gets 415', async (t) => {
  const { port, events, capture, replays } = await setup(t)
  const ex = simulateExchange(events, {})
  for (const headers of [{} as Record<string, string>, { 'Content-Type': 'application/x-www-form-urlencoded' }, { 'Content-Type': 'text/plain' }, { 'Content-Type': 'multipart/form-data; boundary=x' }]) {
    const post = await call(port, 'POST', '/api/requests/http', { headers, body: JSON.stringify({ id: ex.id }) })
    assert.equal(post.status, 415)
    assert.equal(post.json().error_code, 'GW_ERR_API_UNSUPPORTED_MEDIA_TYPE')
  }
  assert.equal(replays.length, 0)
  assert.equal(capture.size, 1)
})

test('a failure inside the agent API is a 500 of its own, not the caller\'s 400', async (t) => {
  const { port, setStatus } = await setup(t)
  setStatus(null as never)
  const res = await call(port, 'GET', '/api/status')
  assert.equal(res.status, 500)
  assert.equal(res.json().error_code, 'GW_ERR_API_INTERNAL')
})

test('only local Host names are answered (DNS rebinding), and no CORS headers are ever sent', async (t) => {
  const { port, events } = await setup(t)
  simulateExchange(events, {})
  for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example', `127.0.0.1:${port + 1}`, '127.0.0.2']) {
    const res = await call(port, 'GET', '/api/tunnels', { host })
    assert.equal(res.status, 403, `Host ${host}`)
    assert.equal(res.json().error_code, 'GW_ERR_API_FORBIDDEN_HOST')
  }
  // No Host at all (HTTP/1.0) is refused too.
  const bare = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end('GET /api/tunnels HTTP/1.0\r\n\r\n'))
    let text = ''
    socket.on('data', (c) => (text += c))
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })
  assert.match(bare, /^HTTP\/1\.1 403 /)
  for (const host of ['127.0.0.1', `127.0.0.1:${port}`, 'localhost', `LOCALHOST:${port}`, '[::1]', `[::1]:${port}`]) {
    const res = await call(port, 'GET', '/api/tunnels', { host })
    assert.equal(res.status, 200, `Host ${host}`)
  }
  const paths: [string, string][] = [['GET', '/api/tunnels'], ['GET', '/api/requests/http'], ['GET', '/api/status'], ['OPTIONS', '/api/requests/http'], ['GET', '/inspect/http'], ['GET', '/nope']]
  for (const [method, path] of paths) {
    const res = await call(port, method, path, { headers: { Origin: `http://127.0.0.1:${port}`, 'Access-Control-Request-Method': 'POST' } })
    for (const name of Object.keys(res.headers)) assert.ok(!name.startsWith('access-control-'), `${method} ${path} sent ${name}`)
  }
  const preflight = await call(port, 'OPTIONS', '/api/requests/http', { headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } })
  assert.equal(preflight.status, 403)
  const crossSite = await call(port, 'POST', '/api/requests/http', { headers: { ...JSON_HEADERS, Origin: 'https://evil.example' }, body: '{"id":"x"}' })
  assert.equal(crossSite.status, 403)
  assert.equal(crossSite.json().error_code, 'GW_ERR_API_FORBIDDEN_ORIGIN')
})

test('GET /api/status, unknown paths and wrong methods', async (t) => {
  const { port, events } = await setup(t)
  simulateExchange(events, { responseBody: 'abc' })
  const status = await call(port, 'GET', '/api/status')
  assert.equal(status.status, 200)
  const s = status.json()
  // ngrok's shape first, gw's under `gw`.
  assert.equal(s.status, 'online')
  assert.equal(s.agent_version, '0.1.0')
  assert.deepEqual(s.session.legs, [{ region: 'wss://relay.example:443', latency: '23ms' }])
  assert.equal(s.uri, '/api/status')
  assert.equal(s.gw.latency_ms, 23.4)
  assert.equal(s.gw.tunnels[0].public_url, 'https://demo.localhost:8443')
  assert.equal(s.gw.metrics.bytes_out, 3)
  assert.equal(s.gw.capture.requests, 1)
  assert.equal((await call(port, 'GET', '/api')).json().tunnels, '/api/tunnels')
  const nf = await call(port, 'GET', '/api/nope')
  assert.equal(nf.status, 404)
  assert.equal(nf.json().error_code, 'GW_ERR_API_NOT_FOUND')
  const wrong = await call(port, 'PUT', '/api/tunnels', { headers: JSON_HEADERS })
  assert.equal(wrong.status, 405)
  assert.equal(wrong.headers.allow, 'GET')
  const root = await call(port, 'GET', '/')
  assert.equal(root.status, 302)
  assert.equal(root.headers.location, '/inspect/http')
})

test('the SSE feed sends a snapshot, then batched upserts, removals and clears', { timeout: 20_000 }, async (t) => {
  const { port, events } = await setup(t, { dbSize: 4000 })
  const early = simulateExchange(events, { target: '/early' })
  const controller = new AbortController()
  t.after(() => controller.abort())
  const res = await fetch(`http://127.0.0.1:${port}/api/requests/http/events`, { signal: controller.signal })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/)
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  async function next(name: string): Promise<any> {
    for (;;) {
      const m = new RegExp(`event: ${name}\\ndata: (.*)\\n\\n`).exec(buffer)
      if (m) {
        buffer = buffer.slice(m.index + m[0].length)
        return JSON.parse(m[1]!)
      }
      const { value, done } = await reader.read()
      if (done) throw new Error('stream ended')
      buffer += value
    }
  }
  const snapshot = await next('snapshot')
  assert.deepEqual(snapshot.requests.map((r: any) => r.id), [early.id])
  const ids = []
  for (let i = 0; i < 20; i++) ids.push(simulateExchange(events, { target: `/n${i}`, responseBody: Buffer.alloc(100) }).id)
  const batch = await next('requests')
  // One batch for all twenty, and the early one, pushed out of the 4000-byte buffer.
  assert.ok(batch.upsert.length > 1)
  assert.ok(batch.remove.includes(early.id))
  assert.equal(batch.upsert.at(-1).path, '/n19')
  assert.equal(batch.upsert.at(-1).status_code, 200)
  await call(port, 'DELETE', '/api/requests/http', { headers: JSON_HEADERS })
  await next('clear')
  events.emit('status', agentStatus({ status: 'reconnecting', attempt: 3 }))
  let status = await next('status')
  while (status.attempt !== 3) status = await next('status')
  assert.equal(status.status, 'reconnecting')
})

test('the default address moves to the next port when taken; an explicit one does not', async (t) => {
  // Hold a port, and ask for it explicitly.
  const holder = net.createServer()
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r))
  t.after(() => holder.close())
  const taken = (holder.address() as net.AddressInfo).port
  const events = new AgentEvents()
  const base = { getStatus: () => agentStatus(), capture: createCapture(events, {}), metrics: createMetrics(events), events, replay: async () => {} }
  await assert.rejects(startAgentApi({ ...base, addr: `127.0.0.1:${taken}` }), { code: 'GW_ERR_API_LISTEN' })
  // The default may find 4040 free or taken by another agent on this machine: either way it listens, on 4040 or after.
  const api = await startAgentApi(base)
  t.after(() => api.close())
  assert.ok(api.port >= 4040 && api.port <= 4140)
  const second = await startAgentApi(base)
  t.after(() => second.close())
  assert.ok(second.port > api.port || second.port < api.port)
  assert.equal((await call(second.port, 'GET', '/api/tunnels')).status, 200)
})
