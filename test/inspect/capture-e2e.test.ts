/**
 * Capture, metrics and the agent API on a real relay, agent and upstream: what the
 * agent's events carry really ends up in the records (bodies cut at the limit while the
 * upstream gets them whole, a WebSocket as one record with message counts), and a replay
 * through the API reaches the upstream again.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { test } from 'node:test'
import { Pool } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { AgentEvents } from '@gw/cli/agent/events'
import { startAgentApi } from '@gw/cli/api/server'
import { createCapture } from '@gw/cli/inspect/capture'
import { createMetrics } from '@gw/cli/inspect/metrics'
import { startStack, waitFor } from '../helpers/stack.js'
import { call } from './helpers.js'

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

test('records real traffic through the tunnel, and replays it', { timeout: 60_000 }, async (t) => {
  const hits: { method: string; url: string; sha: string; size: number }[] = []
  const events = new AgentEvents()
  const stack = await startStack(
    (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = Buffer.concat(chunks)
        hits.push({ method: req.method!, url: req.url!, sha: sha(body), size: body.length })
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ size: body.length }))
      })
    },
    { agent: { events, record: true } },
  )
  t.after(() => stack.close())
  const wss = new WebSocketServer({ server: stack.upstream.server, perMessageDeflate: false })
  wss.on('connection', (socket) => socket.on('message', (data, binary) => socket.send(data, { binary })))
  t.after(() => wss.close())

  const capture = createCapture(events, { bodyLimit: 64 * 1024, dbSize: 10 * 1024 * 1024, enabled: true })
  const metrics = createMetrics(events)
  const api = await startAgentApi({
    addr: '127.0.0.1:0',
    getStatus: () => stack.agent.status(),
    capture,
    metrics,
    events,
    replay: (request, replayOf, tunnel) => stack.agent.replay(request, replayOf, tunnel),
  })
  t.after(() => api.close())
  const pool = new Pool(stack.httpOrigin)
  t.after(() => pool.close())

  // A 200 KiB upload: the upstream gets all of it, the capture keeps 64 KiB and says so.
  const big = Buffer.alloc(200 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
  const up = await pool.request({ path: '/upload', method: 'POST', headers: { host: stack.host, 'content-type': 'application/octet-stream' }, body: big })
  assert.equal(up.statusCode, 200)
  await up.body.text()
  await waitFor(() => capture.list().some((r) => r.exchange.request.target === '/upload' && r.state === 'done'), 10_000, 'the upload record')
  const upload = capture.list().find((r) => r.exchange.request.target === '/upload')!
  assert.equal(hits.find((h) => h.url === '/upload')?.sha, sha(big), 'the upstream got the whole body')
  assert.equal(upload.requestBody.size, big.length)
  assert.equal(upload.requestBody.bytes.length, 64 * 1024)
  assert.equal(upload.requestBody.truncated, true)
  assert.deepEqual(upload.requestBody.bytes, big.subarray(0, 64 * 1024))
  assert.equal(upload.responseBody.bytes.toString(), JSON.stringify({ size: big.length }))

  // A small webhook, replayed through the API: the upstream sees the same body twice.
  const hook = '{"event":"paid"}'
  const res = await pool.request({ path: '/hook?x=1', method: 'POST', headers: { host: stack.host, 'content-type': 'application/json' }, body: hook })
  await res.body.text()
  await waitFor(() => capture.list().some((r) => r.exchange.request.target === '/hook?x=1' && r.state === 'done'), 10_000, 'the hook record')
  const record = capture.list().find((r) => r.exchange.request.target === '/hook?x=1')!
  const listed = (await call(api.port, 'GET', '/api/requests/http?limit=10')).json()
  const entry = listed.requests.find((r: any) => r.id === record.id)
  assert.equal(entry.tunnel_name, stack.agent.status().tunnels[0]!.publicUrls.length > 1 ? `${stack.agent.tunnels[0]!.name} (http)` : stack.agent.tunnels[0]!.name)
  assert.ok(Buffer.from(entry.request.raw, 'base64').toString().endsWith(`\r\n\r\n${hook}`))
  const replayed = await call(api.port, 'POST', '/api/requests/http', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id: record.id }) })
  assert.equal(replayed.status, 204)
  await waitFor(() => hits.filter((h) => h.url === '/hook?x=1').length === 2, 10_000, 'the replay at the upstream')
  const hookHits = hits.filter((h) => h.url === '/hook?x=1')
  assert.equal(hookHits[1]!.sha, sha(hook))
  assert.equal(hookHits[0]!.sha, sha(hook), 'the first delivery carried the body too')
  const replayRecord = capture.list().find((r) => r.exchange.replayOf === record.id)
  assert.ok(replayRecord, 'the replay is captured, marked with what it replays')

  // A WebSocket: one record, the 101, and the message counts; no frames kept.
  const ws = new WebSocket(`ws://127.0.0.1:${stack.relay.httpPort}/socket`, { headers: { host: stack.host }, perMessageDeflate: false })
  await once(ws, 'open')
  let echoed = 0
  ws.on('message', () => echoed++)
  for (let i = 0; i < 5; i++) ws.send(`message ${i}`)
  await waitFor(() => echoed === 5, 10_000, 'the echoes')
  ws.close()
  await once(ws, 'close')
  await waitFor(() => capture.list().some((r) => r.exchange.request.target === '/socket' && r.state === 'done'), 10_000, 'the WebSocket record to end')
  const sockets = capture.list().filter((r) => r.exchange.request.target === '/socket')
  assert.equal(sockets.length, 1)
  assert.equal(sockets[0]!.exchange.response?.status, 101)
  assert.equal(sockets[0]!.responseBody.size, 0)
  assert.ok(sockets[0]!.exchange.websocket!.messagesIn >= 5, JSON.stringify(sockets[0]!.exchange.websocket))
  assert.ok(sockets[0]!.exchange.websocket!.messagesOut >= 5, JSON.stringify(sockets[0]!.exchange.websocket))

  const snap = metrics.snapshot()
  assert.equal(snap.conns.gauge, 0)
  assert.ok(snap.http.count >= 3)
  assert.ok(snap.conns.count >= snap.http.count + 1)
  assert.ok(snap.bytes.in >= big.length)
})
