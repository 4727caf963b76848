// First: chalk decides on colours when it loads, and a test has no TTY.
import './force-color.js'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createElement } from 'react'
import { renderToString } from 'ink'
import { AgentEvents } from '@gw/cli/agent/events'
import { createCapture } from '@gw/cli/inspect/capture'
import { createMetrics } from '@gw/cli/inspect/metrics'
import type { ReplayRequest } from '@gw/cli/inspect/replay'
import { startTui } from '@gw/cli/tui/render'
import { RequestList } from '@gw/cli/tui/request-list'
import { agentStatus, simulateExchange, startExchange } from '../inspect/helpers.js'
import { FakeStdin, FakeStdout, KEYS, stripAnsi, waitFor } from './fake-terminal.js'

function setup(t: { after(fn: () => unknown): void }, size: [number, number] = [80, 24], options: { bodyLimit?: number } = {}) {
  const events = new AgentEvents()
  const capture = createCapture(events, { bodyLimit: options.bodyLimit ?? 65536, dbSize: 1e6, enabled: true })
  const metrics = createMetrics(events)
  const stdout = new FakeStdout(...size)
  const stdin = new FakeStdin()
  const replays: { request: ReplayRequest; replayOf: string }[] = []
  const tui = startTui({
    events,
    getStatus: () => agentStatus(),
    capture,
    metrics,
    replay: async (request, replayOf, tunnel) => {
      replays.push({ request, replayOf })
      simulateExchange(events, { method: request.method, target: request.target, rawHeaders: request.rawHeaders, requestBody: request.body, replayOf, tunnel })
    },
    apiUrl: 'http://127.0.0.1:4040',
    stdout: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    debug: true,
    refreshMs: 20,
  })
  t.after(() => {
    tui.stop()
    return tui.waitUntilExit()
  })
  const frame = () => stdout.lastFrame()
  const until = (what: string | RegExp, timeout?: number) =>
    waitFor(() => (typeof what === 'string' ? frame().includes(what) : what.test(frame())), `frame to show ${what}\n--- last frame:\n${frame()}`, timeout)
  const press = async (key: string) => {
    stdin.write(key)
    await new Promise((r) => setTimeout(r, 30))
  }
  return { events, capture, metrics, stdout, stdin, tui, replays, frame, until, press }
}

function assertFits(frame: string, columns: number, rows: number): void {
  const lines = frame.replace(/\n$/, '').split('\n')
  assert.ok(lines.length <= rows - 1, `${lines.length} lines in a ${rows}-row terminal:\n${frame}`)
  for (const line of lines) assert.ok([...line].length <= columns, `line wider than ${columns}: ${JSON.stringify(line)}`)
}

test('the header and the live list, newest first, fit 80×24', { timeout: 20_000 }, async (t) => {
  const s = setup(t)
  await s.until('no requests yet')
  simulateExchange(s.events, { target: '/users?page=2', status: 200, responseBody: 'x'.repeat(2048), durationMs: 12 })
  simulateExchange(s.events, { method: 'POST', target: '/hooks/stripe', status: 500 })
  simulateExchange(s.events, { target: '/admin', status: 401, verdict: { action: 'basic-auth', rule: 'auth', status: 401 } })
  startExchange(s.events, { target: '/slow' })
  await s.until('/slow')
  const f = s.frame()
  assert.match(f, /● online/)
  assert.match(f, /latency 23ms/)
  assert.match(f, /https:\/\/demo\.localhost:8443 → http:\/\/localhost:3000/)
  assert.match(f, /http:\/\/127\.0\.0\.1:4040/)
  assert.match(f, /ttl\s+opn\s+rt1\s+rt5\s+p50\s+p90/)
  const lines = f.split('\n')
  const order = ['/slow', '/admin', '/hooks/stripe', '/users'].map((p) => lines.findIndex((l) => l.includes(p)))
  assert.deepEqual([...order].sort((a, b) => a - b), order, 'newest first')
  const users = lines.find((l) => l.includes('/users'))!
  assert.match(users, /GET\s+\/users\s+200\s+12ms\s+2\.0KB/)
  assert.ok(!users.includes('page=2'), 'the list shows the path without the query')
  assert.match(lines.find((l) => l.includes('/admin'))!, /401 .*basic-auth/)
  assert.match(lines.find((l) => l.includes('/slow'))!, /…\s+open/)
  assertFits(f, 80, 24)
})

test('status colours by class', () => {
  const events = new AgentEvents()
  const capture = createCapture(events, {})
  for (const status of [200, 302, 404, 503]) simulateExchange(events, { target: `/s${status}`, status })
  // renderToString keeps colours: look for the SGR code in front of each status.
  const out = renderToString(createElement(RequestList, { records: capture.list(), selectedId: undefined, columns: 80, height: 6, empty: '' }), { columns: 80 })
  const coloursOf = (status: number) => (new RegExp(`((?:\\x1b\\[\\d+m)+)${status}`).exec(out)?.[1] ?? '').match(/\d+/g) ?? ([] as string[])
  assert.ok(coloursOf(200).includes('32'), 'green') // green
  assert.ok(coloursOf(302).includes('36'), 'cyan')
  assert.ok(coloursOf(404).includes('33'), 'yellow')
  assert.ok(coloursOf(503).includes('31'), 'red')
  // A long path is cut, never wrapped.
  const long = createCapture(events, {})
  simulateExchange(events, { target: '/' + 'a'.repeat(300) })
  const one = stripAnsi(renderToString(createElement(RequestList, { records: long.list(), selectedId: undefined, columns: 80, height: 3, empty: '' }), { columns: 80 }))
  assert.equal(one.split('\n').length, 3)
  assert.ok(one.split('\n').every((l) => [...l].length <= 80))
  assert.match(one, /a…/)
})

test('Enter opens the detail: lines, headers, pretty JSON, timing; Esc goes back', { timeout: 20_000 }, async (t) => {
  const s = setup(t)
  simulateExchange(s.events, {
    method: 'POST',
    target: '/hooks',
    rawHeaders: ['Host', 'demo.localhost', 'Content-Type', 'application/json', 'X-Signature', 'sig123'],
    requestBody: '{"event":"paid","amount":42}',
    status: 201,
    responseHeaders: ['Content-Type', 'application/xml'],
    responseBody: '<ok><id>7</id></ok>',
  })
  simulateExchange(s.events, { target: '/newest' })
  await s.until('/newest')
  await s.press(KEYS.down)
  await s.press(KEYS.enter)
  await s.until('POST /hooks HTTP/1.1')
  const f = s.frame()
  assert.match(f, /HTTP\/1\.1 201 Created/)
  assert.match(f, /X-Signature: sig123/)
  assert.match(f, /Request body \(json, 28B\)/)
  assert.match(f, /^\s+"event": "paid",$/m)
  assert.match(f, /timing: relay→agent 1\.0ms · agent→upstream 1\.0ms · upstream 10ms\n\s+transfer 1\.0ms · total 12ms/)
  assertFits(f, 80, 24)
  // Scroll down to the response body.
  for (let i = 0; i < 8; i++) await s.press(KEYS.down)
  await s.until('<id>7</id>')
  assert.match(s.frame(), /^\s+<ok>$/m)
  await s.press(KEYS.escape)
  await s.until('/newest')
  assert.ok(!s.frame().includes('X-Signature'))
})

test('the detail shows binary as hex and states a truncation', { timeout: 20_000 }, async (t) => {
  const s = setup(t, [80, 24], { bodyLimit: 32 })
  simulateExchange(s.events, {
    method: 'PUT',
    target: '/upload',
    rawHeaders: ['Content-Type', 'application/octet-stream'],
    requestBody: Buffer.from(Array.from({ length: 100 }, (_, i) => i)),
  })
  await s.until('/upload')
  await s.press(KEYS.enter)
  await s.until('PUT /upload')
  const f = s.frame()
  assert.match(f, /Request body \(binary, 100B\)/)
  assert.match(f, /truncated: 32 of 100 bytes captured/)
  assert.match(f, /00000000 {2}00 01 02 03 04 05 06 07 {2}08 09 0a 0b/)
})

test('/ filters by method, status class and path; Esc clears it', { timeout: 20_000 }, async (t) => {
  const s = setup(t)
  simulateExchange(s.events, { method: 'GET', target: '/api/users', status: 200 })
  simulateExchange(s.events, { method: 'POST', target: '/api/orders', status: 201 })
  simulateExchange(s.events, { method: 'GET', target: '/missing', status: 404 })
  await s.until('/missing')
  await s.press('/')
  for (const ch of 'post') await s.press(ch)
  await s.until('filter /post')
  await s.press(KEYS.enter)
  await s.until('filter: post')
  let f = s.frame()
  assert.ok(f.includes('/api/orders') && !f.includes('/api/users') && !f.includes('/missing'), f)
  await s.press('/')
  for (let i = 0; i < 4; i++) await s.press(KEYS.backspace)
  for (const ch of '4xx') await s.press(ch)
  await s.press(KEYS.enter)
  await s.until('filter: 4xx')
  f = s.frame()
  assert.ok(f.includes('/missing') && !f.includes('/api/'), f)
  await s.press('/')
  for (let i = 0; i < 3; i++) await s.press(KEYS.backspace)
  for (const ch of '/api') await s.press(ch)
  await s.press(KEYS.enter)
  await s.until('filter: /api')
  f = s.frame()
  assert.ok(f.includes('/api/users') && f.includes('/api/orders') && !f.includes('/missing'), f)
  await s.press('/')
  await s.press(KEYS.escape)
  await s.until('/missing')
})

test('r replays the selected request, c clears, q quits and restores raw mode', { timeout: 20_000 }, async (t) => {
  const s = setup(t)
  const original = simulateExchange(s.events, { method: 'POST', target: '/hook', requestBody: '{"a":1}' })
  await s.until('/hook')
  assert.equal(s.stdin.rawMode, true)
  await s.press('r')
  await waitFor(() => s.replays.length === 1, 'a replay')
  assert.equal(s.replays[0]!.replayOf, original.id)
  assert.equal(s.replays[0]!.request.body.toString(), '{"a":1}')
  await s.until(/replay\s*$/m)
  await s.until('replayed POST /hook')
  await s.press('c')
  await s.until('no requests yet')
  assert.equal(s.capture.size, 0)
  await s.press('q')
  await s.tui.waitUntilExit()
  assert.equal(s.stdin.rawMode, false)
})

test('warnings and errors from the agent show in the footer', { timeout: 20_000 }, async (t) => {
  const s = setup(t)
  await s.until('no requests yet')
  s.events.emit('log', { level: 'info', msg: 'not shown', fields: {} })
  s.events.emit('log', { level: 'warn', msg: 'relay connection lost, reconnecting', fields: { attempt: 2, in_ms: 800 } })
  await s.until('warn: relay connection lost, reconnecting attempt=2 in_ms=800')
  assert.ok(!s.frame().includes('not shown'))
})

test('it follows resizes', { timeout: 20_000 }, async (t) => {
  const s = setup(t, [80, 24])
  for (let i = 0; i < 40; i++) simulateExchange(s.events, { target: `/r${i}` })
  await s.until('/r39')
  assertFits(s.frame(), 80, 24)
  const rows80 = s.frame().split('\n').filter((l) => /\/r\d+/.test(l)).length
  s.stdout.resize(120, 40)
  await waitFor(() => s.frame().split('\n').filter((l) => /\/r\d+/.test(l)).length > rows80, 'more rows after the resize')
  assertFits(s.frame(), 120, 40)
  s.stdout.resize(60, 15)
  await waitFor(() => s.frame().split('\n').filter((l) => /\/r\d+/.test(l)).length < rows80, 'fewer rows after the resize')
  assertFits(s.frame(), 60, 15)
})

test('repaints are batched under a burst of requests', { timeout: 20_000 }, async (t) => {
  const s = setup(t)
  await s.until('no requests yet')
  const before = s.stdout.frames.length
  const started = Date.now()
  // 2,000 requests over ~400 ms: 5,000 a second.
  for (let burst = 0; burst < 20; burst++) {
    for (let i = 0; i < 100; i++) simulateExchange(s.events, { target: `/b${burst}-${i}` })
    await new Promise((r) => setTimeout(r, 20))
  }
  await s.until('/b19-99')
  const elapsed = Date.now() - started
  const frames = s.stdout.frames.length - before
  // The test runs with a 20 ms batch window; allow a few extra for key and timer edges.
  assert.ok(frames <= elapsed / 20 + 5, `${frames} frames in ${elapsed} ms`)
  assert.ok(frames < 200, 'far fewer repaints than requests')
})

test('with stdin not a terminal it shows traffic and reads no keys', { timeout: 20_000 }, async (t) => {
  const events = new AgentEvents()
  const capture = createCapture(events, {})
  const stdout = new FakeStdout(80, 24)
  const stdin = new FakeStdin()
  stdin.isTTY = false
  const tui = startTui({
    events,
    getStatus: () => agentStatus(),
    capture,
    metrics: createMetrics(events),
    replay: async () => {},
    apiUrl: 'http://127.0.0.1:4040',
    stdout: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    debug: true,
    refreshMs: 20,
  })
  t.after(() => {
    tui.stop()
    return tui.waitUntilExit()
  })
  simulateExchange(events, { target: '/piped' })
  await waitFor(() => stdout.lastFrame().includes('/piped'), 'the row')
  assert.match(stdout.lastFrame(), /keys are off/)
  assert.equal(stdin.rawMode, false)
})
