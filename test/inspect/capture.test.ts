import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AgentEvents } from '@gw/cli/agent/events'
import { createCapture, RECORD_OVERHEAD } from '@gw/cli/inspect/capture'
import { buildReplayRequest, parseModifications } from '@gw/cli/inspect/replay'
import { previewBody } from '@gw/cli/inspect/body-preview'
import { endExchange, simulateExchange, startExchange } from './helpers.js'

test('records heads and bodies, newest first', () => {
  const events = new AgentEvents()
  const capture = createCapture(events, { bodyLimit: 1024, dbSize: 1e6, enabled: true })
  const a = simulateExchange(events, { method: 'POST', target: '/a', requestBody: '{"x":1}', responseBody: 'ok' })
  const b = simulateExchange(events, { target: '/b' })
  assert.deepEqual(capture.list().map((r) => r.id), [b.id, a.id])
  const rec = capture.get(a.id)!
  assert.equal(rec.state, 'done')
  assert.equal(rec.requestBody.bytes.toString(), '{"x":1}')
  assert.equal(rec.responseBody.bytes.toString(), 'ok')
  assert.equal(rec.requestBody.truncated, false)
  assert.deepEqual(capture.list({ limit: 1 }).map((r) => r.id), [b.id])
})

test('bodies are cut at the body limit, and the cut is stated', () => {
  const events = new AgentEvents()
  const capture = createCapture(events, { bodyLimit: 10, dbSize: 1e6, enabled: true })
  const ex = startExchange(events, { method: 'POST' })
  events.emit('exchange:request-body', ex, Buffer.from('0123456'))
  events.emit('exchange:request-body', ex, Buffer.from('789abcdef'))
  endExchange(events, ex)
  const body = capture.get(ex.id)!.requestBody
  assert.equal(body.bytes.toString(), '0123456789')
  assert.equal(body.size, 16)
  assert.equal(body.truncated, true)
  const preview = previewBody(body)
  assert.match(preview.note!, /10 of 16 bytes/)
  assert.throws(() => buildReplayRequest(capture.get(ex.id)!), { code: 'GW_ERR_REPLAY_BODY_TRUNCATED' })
  // A new body makes the replay possible again, with its own length.
  const req = buildReplayRequest(capture.get(ex.id)!, parseModifications({ body: 'new' }))
  assert.equal(req.body.toString(), 'new')
  assert.ok(req.rawHeaders.includes('Content-Length') && req.rawHeaders.includes('3'))
})

test('the ring buffer stays within its byte bound and drops the oldest first', () => {
  const events = new AgentEvents()
  const dbSize = 64 * 1024
  const capture = createCapture(events, { bodyLimit: 4096, dbSize, enabled: true })
  const ids: string[] = []
  // Enough to wrap the order array's compaction several times.
  for (let i = 0; i < 3000; i++) {
    ids.push(simulateExchange(events, { method: 'POST', target: `/n/${i}`, requestBody: Buffer.alloc(1000, 1), responseBody: Buffer.alloc(2000, 2) }).id)
    assert.ok(capture.usedBytes <= dbSize, `used ${capture.usedBytes} > ${dbSize}`)
  }
  const kept = capture.list().map((r) => r.id)
  assert.ok(kept.length > 5 && kept.length < 3000)
  // The kept ones are exactly the newest, in order.
  assert.deepEqual(kept, ids.slice(-kept.length).reverse())
  const perRecord = capture.usedBytes / kept.length
  assert.ok(perRecord >= 3000 + RECORD_OVERHEAD, 'bodies and overhead are charged')
  capture.clear()
  assert.equal(capture.size, 0)
  assert.equal(capture.usedBytes, 0)
})

test('a record evicted while in flight ignores its later events', () => {
  const events = new AgentEvents()
  const capture = createCapture(events, { bodyLimit: 4096, dbSize: 8000, enabled: true })
  const first = startExchange(events, { method: 'POST' })
  for (let i = 0; i < 10; i++) simulateExchange(events, { responseBody: Buffer.alloc(1000) })
  assert.equal(capture.get(first.id), undefined)
  events.emit('exchange:request-body', first, Buffer.alloc(3000))
  endExchange(events, first)
  assert.equal(capture.get(first.id), undefined)
  assert.ok(capture.usedBytes <= 8000)
})

test('a WebSocket connection is one entry with message counts, frames not kept', () => {
  const events = new AgentEvents()
  const capture = createCapture(events, { bodyLimit: 1024, dbSize: 1e6, enabled: true })
  const ex = simulateExchange(events, {
    target: '/socket',
    rawHeaders: ['Host', 'x', 'Upgrade', 'websocket', 'Connection', 'Upgrade'],
    status: 101,
    responseHeaders: ['Upgrade', 'websocket', 'Connection', 'Upgrade'],
    open: true,
  })
  events.emit('exchange:response-body', ex, Buffer.from([0x81, 0x02, 0x68, 0x69]))
  ex.websocket = { messagesIn: 3, messagesOut: 5 }
  endExchange(events, ex)
  assert.equal(capture.size, 1)
  const rec = capture.get(ex.id)!
  assert.equal(rec.responseBody.size, 0)
  assert.deepEqual(rec.exchange.websocket, { messagesIn: 3, messagesOut: 5 })
})

test('capture off records nothing', () => {
  const events = new AgentEvents()
  const capture = createCapture(events, { bodyLimit: 1024, dbSize: 1e6, enabled: false })
  simulateExchange(events, {})
  assert.equal(capture.size, 0)
  assert.equal(events.listenerCount('exchange:start'), 0)
})

test('previews pretty-print JSON and XML, and dump binary as hex', () => {
  const body = (s: string | Buffer) => ({ bytes: Buffer.from(s), size: Buffer.from(s).length, truncated: false })
  const json = previewBody(body('{"a":[1,2],"b":{"c":true}}'), { contentType: 'application/json' })
  assert.equal(json.kind, 'json')
  assert.deepEqual(json.lines.slice(0, 3), ['{', '  "a": [', '    1,'])
  const xml = previewBody(body('<?xml version="1.0"?><a><b>hi</b><c/></a>'), { contentType: 'application/xml' })
  assert.equal(xml.kind, 'xml')
  assert.deepEqual(xml.lines, ['<?xml version="1.0"?>', '<a>', '  <b>hi</b>', '  <c/>', '</a>'])
  const bin = previewBody(body(Buffer.from([0, 1, 2, 0xff, 0x41])))
  assert.equal(bin.kind, 'binary')
  assert.match(bin.lines[0]!, /^00000000  00 01 02 ff 41/)
})
