/**
 * The remaining actions through the real relay and agent, one tunnel, one rule per path:
 * api-key, url-rewrite, custom-response, set-vars, log, circuit-breaker, transform-body
 * on the response, and Stripe and Slack webhooks.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { compilePolicy } from '@gw/cli/policy/index'
import { AgentEvents } from '@gw/cli/agent/events'
import { startPolicyTunnel, type PolicyTunnel } from './tunnel-stack.js'

let upstream: Server
let tunnel: PolicyTunnel
let now = Date.now()
const events = new AgentEvents()
const logs: Array<{ msg: string; fields: Record<string, unknown> }> = []
events.on('log', (l) => logs.push(l))
let flakyStatus = 500

before(async () => {
  upstream = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c))
    req.on('end', () => {
      if (req.url === '/flaky') {
        res.statusCode = flakyStatus
        res.end('flaky')
        return
      }
      if (req.url?.startsWith('/xml')) {
        res.setHeader('content-type', 'text/xml')
        res.end('<result><ok>true</ok><n>3</n></result>')
        return
      }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ url: req.url, headers: req.headers, body }))
    })
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const hash = createHash('sha256').update('key-1').digest('hex')
  const policy = compilePolicy({ on_http_request: [
    { expressions: ["req.url.path.startsWith('/keyed/')"], actions: [{ type: 'api-key', config: { keys: [{ name: 'partner', hash, scopes: ['read'] }] } }] },
    { expressions: ["req.url.path.startsWith('/keyed/')"], actions: [{ type: 'add-headers', config: { headers: { 'x-partner': '${actions.gw.api_key.name}' } } }] },
    { expressions: ["req.url.path.startsWith('/v1/')"], actions: [{ type: 'url-rewrite', config: { from: '/v1/users/([0-9]+)', to: '/users?id=$1' } }] },
    { expressions: ["req.url.path == '/status'"], actions: [
      { type: 'set-vars', config: { vars: [{ who: '${conn.client_ip}' }] } },
      { type: 'log', config: { metadata: { who: '${vars.who}', path: '${req.url.path}' } } },
      { type: 'custom-response', config: { status_code: 200, body: '{"ok":true,"ip":"${vars.who}"}' } },
    ] },
    { expressions: ["req.url.path == '/flaky'"], actions: [{ type: 'circuit-breaker', config: { volume_threshold: 3, error_threshold: 0.5, tripped_duration: '5s' } }] },
    { expressions: ["req.url.path == '/hooks/stripe'"], actions: [{ type: 'verify-webhook', config: { provider: 'stripe', secret: 'whsec_e2e' } }] },
    { expressions: ["req.url.path == '/hooks/slack'"], actions: [{ type: 'verify-webhook', config: { provider: 'slack', secret: 'slack_e2e' } }] },
  ], on_http_response: [
    { expressions: ["req.url.path.startsWith('/xml')"], actions: [{ type: 'transform-body', config: { from: 'xml', to: 'json' } }] },
  ] }, { now: () => now, events, endpoint: 'e2e' })
  tunnel = await startPolicyTunnel(policy, `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, events)
})
after(async () => {
  await tunnel.close()
  upstream.closeAllConnections()
  await new Promise<void>((r) => upstream.close(() => r()))
})

test('api-key through the tunnel', async () => {
  assert.equal((await tunnel.fetch('/keyed/a')).status, 401)
  const ok = await tunnel.fetch('/keyed/a', { headers: { 'x-api-key': 'key-1' } })
  assert.equal(ok.status, 200)
  assert.equal(JSON.parse(ok.text).headers['x-partner'], 'partner')
})

test('url-rewrite through the tunnel: the upstream sees the new URL', async () => {
  const r = await tunnel.fetch('/v1/users/42')
  assert.equal(JSON.parse(r.text).url, '/users?id=42')
})

test('set-vars, log and custom-response through the tunnel', async () => {
  const r = await tunnel.fetch('/status')
  assert.equal(r.status, 200)
  assert.equal(r.headers['content-type'], 'application/json')
  const body = JSON.parse(r.text)
  assert.equal(body.ok, true)
  const line = logs.find((l) => l.msg === 'policy log')
  assert.ok(line, 'the log action wrote to the agent event stream')
  assert.equal(line.fields.who, body.ip)
  assert.equal(line.fields.path, '/status')
  assert.equal(line.fields.endpoint, 'e2e')
})

test('circuit-breaker through the tunnel trips on upstream 5xx and recovers', async () => {
  flakyStatus = 500
  for (let i = 0; i < 3; i++) assert.equal((await tunnel.fetch('/flaky')).status, 500)
  const open = await tunnel.fetch('/flaky')
  assert.equal(open.status, 503)
  assert.ok(Number(open.headers['retry-after']) >= 1)
  flakyStatus = 200
  now += 5_000
  assert.equal((await tunnel.fetch('/flaky')).status, 200, 'the probe succeeds')
  assert.equal((await tunnel.fetch('/flaky')).status, 200)
})

test('transform-body on the response through the tunnel', async () => {
  const r = await tunnel.fetch('/xml/report')
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8')
  assert.deepEqual(JSON.parse(r.text), { result: { ok: true, n: 3 } })
})

test('Stripe and Slack webhooks through the tunnel', async () => {
  const body = '{"type":"invoice.paid"}'
  const t = Math.floor(now / 1000)
  const stripeSig = `t=${t},v1=${createHmac('sha256', 'whsec_e2e').update(`${t}.${body}`).digest('hex')}`
  assert.equal((await tunnel.fetch('/hooks/stripe', { method: 'POST', body, headers: { 'stripe-signature': stripeSig } })).status, 200)
  assert.equal((await tunnel.fetch('/hooks/stripe', { method: 'POST', body: body + ' ', headers: { 'stripe-signature': stripeSig } })).status, 403)
  const form = 'command=%2Fdeploy&text=prod'
  const slackSig = `v0=${createHmac('sha256', 'slack_e2e').update(`v0:${t}:${form}`).digest('hex')}`
  const slack = await tunnel.fetch('/hooks/slack', { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(t), 'x-slack-signature': slackSig } })
  assert.equal(slack.status, 200)
  assert.equal(JSON.parse(slack.text).body, form)
})
