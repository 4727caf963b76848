import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { request } from 'undici'
import { compilePolicy } from '@gw/cli/policy/index'
import { startPolicyGateway, startEchoUpstream, type PolicyGateway } from './tunnel-stack.js'

const secret = 'whsec_test_123'
let now = Date.now()
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>
let gateway: PolicyGateway

before(async () => {
  upstream = await startEchoUpstream()
  const policy = compilePolicy({ on_http_request: [
    { expressions: ["req.url.path == '/github'"], actions: [{ type: 'verify-webhook', config: { provider: 'github', secret } }] },
    { expressions: ["req.url.path == '/stripe'"], actions: [{ type: 'verify-webhook', config: { provider: 'stripe', secret, tolerance: '5m' } }] },
    { expressions: ["req.url.path == '/slack'"], actions: [{ type: 'verify-webhook', config: { provider: 'slack', secret } }] },
    { expressions: ["req.url.path == '/small'"], actions: [{ type: 'verify-webhook', config: { provider: 'github', secret, max_body_size: 16 } }] },
  ] }, { now: () => now })
  gateway = await startPolicyGateway(policy, upstream.url)
})
after(async () => {
  await gateway.close()
  await upstream.close()
})

const payload = JSON.stringify({ action: 'opened', number: 42, text: 'héllo' })
const hex = (...parts: string[]) => {
  const h = createHmac('sha256', secret)
  for (const p of parts) h.update(p)
  return h.digest('hex')
}

async function post(path: string, headers: Record<string, string>, body = payload) {
  const res = await request(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  const text = await res.body.text()
  return { status: res.statusCode, json: JSON.parse(text) as Record<string, any> }
}

test('GitHub: X-Hub-Signature-256 over the exact body; the body reaches the upstream unchanged', async () => {
  const ok = await post('/github', { 'x-hub-signature-256': `sha256=${hex(payload)}` })
  assert.equal(ok.status, 200)
  assert.equal(ok.json.body, payload)
  assert.equal(ok.json.headers['content-length'], String(Buffer.byteLength(payload)))
  const tampered = await post('/github', { 'x-hub-signature-256': `sha256=${hex(payload)}` }, payload.replace('42', '43'))
  assert.equal(tampered.status, 403)
  assert.match(tampered.json.message, /github webhook: the signature does not match/)
  const missing = await post('/github', {})
  assert.equal(missing.status, 403)
})

test('Stripe: t=,v1= with timestamp tolerance', async () => {
  const t = Math.floor(now / 1000)
  const sig = `t=${t},v1=${hex(`${t}.`, payload)},v0=ignored`
  assert.equal((await post('/stripe', { 'stripe-signature': sig })).status, 200)
  const old = Math.floor(now / 1000) - 600
  const stale = await post('/stripe', { 'stripe-signature': `t=${old},v1=${hex(`${old}.`, payload)}` })
  assert.equal(stale.status, 403)
  assert.match(stale.json.message, /timestamp is outside the tolerance/)
  // Several v1 signatures (secret rotation): one matching is enough.
  assert.equal((await post('/stripe', { 'stripe-signature': `t=${t},v1=${'0'.repeat(64)},v1=${hex(`${t}.`, payload)}` })).status, 200)
})

test('Slack: v0 signature over v0:<ts>:<body> with X-Slack-Request-Timestamp', async () => {
  const ts = String(Math.floor(now / 1000))
  const form = 'token=x&team_id=T1&text=hi'
  const headers = { 'x-slack-request-timestamp': ts, 'x-slack-signature': `v0=${hex(`v0:${ts}:`, form)}`, 'content-type': 'application/x-www-form-urlencoded' }
  assert.equal((await post('/slack', headers, form)).status, 200)
  now += 10 * 60_000 // the same delivery replayed ten minutes later
  assert.equal((await post('/slack', headers, form)).status, 403)
  now -= 10 * 60_000
})

test('verify-webhook answers 413 over max_body_size', async () => {
  const r = await post('/small', { 'x-hub-signature-256': `sha256=${hex(payload)}` })
  assert.equal(r.status, 413)
  assert.equal(r.json.error, 'GW_ERR_POLICY_BODY_TOO_LARGE')
})
