/**
 * Policies end to end: a real relay, the real agent with its policy pipeline, real
 * upstreams, and undici as the public client. Each test runs one gateway workflow.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { compilePolicy } from '@gw/cli/policy/index'
import { startEchoUpstream } from './tunnel-stack.js'
import { startPolicyTunnel } from './tunnel-stack.js'

let api1: Awaited<ReturnType<typeof startEchoUpstream>>
let api2: Awaited<ReturnType<typeof startEchoUpstream>>
let web: Awaited<ReturnType<typeof startEchoUpstream>>

before(async () => {
  api1 = await startEchoUpstream('api-1')
  api2 = await startEchoUpstream('api-2')
  web = await startEchoUpstream('web')
})
after(async () => {
  for (const u of [api1, api2, web]) await u.close()
})

const basic = (cred: string) => `Basic ${Buffer.from(cred).toString('base64')}`

test('a ten-rule gateway: IP allow list, basic auth, rate limit, three routes, headers, compression', async () => {
  let now = 1_800_000_000_000
  const policy = compilePolicy({
    upstreams: { api: { targets: [api1.url, api2.url], strategy: 'round_robin' } },
    on_http_request: [
      { name: 'ips', actions: [{ type: 'restrict-ips', config: { allow: ['127.0.0.0/8', '::1/128'] } }] },
      { name: 'auth', actions: [{ type: 'basic-auth', config: { credentials: ['dev:s3cret'] } }] },
      { name: 'limit', actions: [{ type: 'rate-limit', config: { capacity: 6, rate: '60s', bucket_key: ['actions.ngrok.basic_auth.credentials.username'] } }] },
      { name: 'tag', actions: [{ type: 'add-headers', config: { headers: { 'x-gw-user': '${actions.ngrok.basic_auth.credentials.username}' } } }] },
      { name: 'api', expressions: ["req.url.path.startsWith('/api/')"], actions: [{ type: 'forward', config: { upstream: 'api' } }] },
      { name: 'legacy', expressions: ["req.url.path.startsWith('/old/')"], actions: [{ type: 'redirect', config: { from: '/old/(.*)', to: '/api/$1', status_code: 308 } }] },
      { name: 'static', expressions: ["req.url.path.startsWith('/static/')"], actions: [{ type: 'forward', config: { url: web.url } }] },
    ],
    on_http_response: [
      { actions: [{ type: 'add-headers', config: { headers: { 'x-served-by': 'gw' } } }] },
      { actions: [{ type: 'remove-headers', config: { headers: ['x-powered-by'] } }] },
      { actions: [{ type: 'compress-response', config: { min_size: 10 } }] },
    ],
  }, { now: () => now })
  const defaultUpstream = await startEchoUpstream('default')
  const tunnel = await startPolicyTunnel(policy, defaultUpstream.url)
  try {
    const denied = await tunnel.fetch('/api/x')
    assert.equal(denied.status, 401)
    assert.match(String(denied.headers['www-authenticate']), /^Basic realm="gw"/)

    const auth = { authorization: basic('dev:s3cret') }
    const a = await tunnel.fetch('/api/orders', { headers: auth })
    const b = await tunnel.fetch('/api/orders', { headers: auth })
    const tags = [JSON.parse(a.text).tag, JSON.parse(b.text).tag].sort()
    assert.deepEqual(tags, ['api-1', 'api-2'], 'round robin across the api pool')
    assert.equal(JSON.parse(a.text).headers['x-gw-user'], 'dev')
    assert.equal(a.headers['x-served-by'], 'gw')

    const st = await tunnel.fetch('/static/app.js', { headers: { ...auth, 'accept-encoding': 'gzip' } })
    assert.equal(st.headers['content-encoding'], 'gzip')
    assert.equal(JSON.parse(gunzipSync(st.body).toString()).tag, 'web')

    const other = await tunnel.fetch('/', { headers: auth })
    assert.equal(JSON.parse(other.text).tag, 'default')

    const moved = await tunnel.fetch('/old/orders?x=1', { headers: auth })
    assert.equal(moved.status, 308)
    assert.equal(moved.headers['location'], `http://${tunnel.host}/api/orders?x=1`)

    // Six requests per minute per user: four used, two left, then 429 with Retry-After.
    assert.equal((await tunnel.fetch('/', { headers: auth })).status, 200)
    const last = await tunnel.fetch('/', { headers: auth })
    assert.equal(last.headers['ratelimit-remaining'], '0')
    const limited = await tunnel.fetch('/', { headers: auth })
    assert.equal(limited.status, 429)
    assert.ok(Number(limited.headers['retry-after']) > 0)
    assert.equal(limited.headers['ratelimit-limit'], '6')
    now += 180_000
    assert.equal((await tunnel.fetch('/', { headers: auth })).status, 200, 'the window has moved on')
  } finally {
    await tunnel.close()
    await defaultUpstream.close()
  }
})

test('JWT through the tunnel: a local JWKS server, claims used for authorization and passed upstream', async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }
  const jwks: Server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: [jwk] }))
  })
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r))
  const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`
  const policy = compilePolicy({ on_http_request: [
    { actions: [{ type: 'jwt-validation', config: {
      issuer: { allow_list: [{ value: 'https://idp.test/' }] },
      audience: { allow_list: [{ value: 'orders' }] },
      http: { tokens: [{ type: 'jwt', method: 'header', name: 'Authorization', prefix: 'Bearer ' }] },
      jws: { allowed_algorithms: ['ES256'], keys: { sources: { additional_jkus: [jwksUrl] } } },
    } }] },
    { expressions: ["req.method == 'DELETE'", "!('admin' in actions.ngrok.jwt_validation.tokens[0].payload.roles)"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
    { actions: [{ type: 'add-headers', config: { headers: { 'x-user-id': '${actions.ngrok.jwt_validation.tokens[0].payload.sub}' } } }] },
  ] })
  const tunnel = await startPolicyTunnel(policy, api1.url)
  const token = (roles: string[]) => new SignJWT({ roles }).setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer('https://idp.test/').setAudience('orders').setSubject('user-7').setIssuedAt().setExpirationTime('5m').sign(privateKey)
  try {
    const none = await tunnel.fetch('/orders')
    assert.equal(none.status, 401)
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="gw"')
    const bad = await tunnel.fetch('/orders', { headers: { authorization: 'Bearer nope' } })
    assert.equal(bad.status, 401)
    assert.match(String(bad.headers['www-authenticate']), /error="invalid_token"/)
    const ok = await tunnel.fetch('/orders', { headers: { authorization: `Bearer ${await token(['reader'])}` } })
    assert.equal(ok.status, 200)
    assert.equal(JSON.parse(ok.text).headers['x-user-id'], 'user-7')
    const del = await tunnel.fetch('/orders/1', { method: 'DELETE', headers: { authorization: `Bearer ${await token(['reader'])}` } })
    assert.equal(del.status, 403)
    const admin = await tunnel.fetch('/orders/1', { method: 'DELETE', headers: { authorization: `Bearer ${await token(['admin'])}` } })
    assert.equal(admin.status, 200)
  } finally {
    await tunnel.close()
    jwks.closeAllConnections()
    await new Promise<void>((r) => jwks.close(() => r()))
  }
})

test('request bodies through the tunnel: validate-request, verify-webhook and transform-body read and pass them on', async () => {
  const secret = 'gh-secret'
  const policy = compilePolicy({ on_http_request: [
    { expressions: ["req.url.path == '/hooks/github'"], actions: [{ type: 'verify-webhook', config: { provider: 'github', secret } }] },
    { expressions: ["req.url.path == '/orders'"], actions: [
      { type: 'validate-request', config: { body_schema: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' } } } } },
      { type: 'transform-body', config: { from: 'json', to: 'xml', root: 'order' } },
    ] },
  ] })
  const tunnel = await startPolicyTunnel(policy, api1.url)
  try {
    const payload = JSON.stringify({ zen: 'Keep it logically awesome.' })
    const sig = `sha256=${createHmac('sha256', secret).update(payload).digest('hex')}`
    const hook = await tunnel.fetch('/hooks/github', { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig }, body: payload })
    assert.equal(hook.status, 200)
    assert.equal(JSON.parse(hook.text).body, payload)
    const forged = await tunnel.fetch('/hooks/github', { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig }, body: payload + ' ' })
    assert.equal(forged.status, 403)

    // Over the cap: 413 at once from Content-Length, and the rest of the body is drained.
    const huge = await tunnel.fetch('/hooks/github', { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig }, body: Buffer.alloc(3 * 1024 * 1024, 0x61) })
    assert.equal(huge.status, 413)
    assert.equal(huge.headers['gw-error-code'], 'GW_ERR_POLICY_BODY_TOO_LARGE')

    const invalid = await tunnel.fetch('/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"qty":1}' })
    assert.equal(invalid.status, 400)
    assert.equal(JSON.parse(invalid.text).errors[0].path, '/sku')
    const valid = await tunnel.fetch('/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sku":"A-1"}' })
    assert.equal(valid.status, 200)
    const seen = JSON.parse(valid.text)
    assert.equal(seen.body, '<?xml version="1.0" encoding="UTF-8"?><order><sku>A-1</sku></order>')
    assert.equal(seen.headers['content-type'], 'application/xml; charset=utf-8')
  } finally {
    await tunnel.close()
  }
})

test('a pool whose targets are all down answers 502 with gw-error-code', async () => {
  const policy = compilePolicy({
    upstreams: { dead: { targets: ['127.0.0.1:9', '127.0.0.1:9/b'] } },
    on_http_request: [{ actions: [{ type: 'forward', config: { upstream: 'dead' } }] }],
  })
  const tunnel = await startPolicyTunnel(policy, api1.url)
  try {
    // Each refused target is ejected; once both are, the pool itself is down.
    const codes: unknown[] = []
    for (let i = 0; i < 3; i++) {
      const r = await tunnel.fetch('/x')
      assert.equal(r.status, 502)
      codes.push(r.headers['gw-error-code'])
    }
    assert.equal(codes.at(-1), 'GW_ERR_UPSTREAM_POOL_DOWN', JSON.stringify(codes))
  } finally {
    await tunnel.close()
  }
})

test('a large request body refused by an auth action does not stall or crash the agent', async () => {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'basic-auth', config: { credentials: ['a:b'] } }] }] })
  const tunnel = await startPolicyTunnel(policy, api1.url)
  try {
    const big = Buffer.alloc(4 * 1024 * 1024, 0x62)
    const refused = await tunnel.fetch('/upload', { method: 'POST', body: big })
    assert.equal(refused.status, 401)
    const ok = await tunnel.fetch('/upload', { method: 'POST', body: big, headers: { authorization: basic('a:b') } })
    assert.equal(ok.status, 200)
    assert.equal(JSON.parse(ok.text).body.length, big.length)
  } finally {
    await tunnel.close()
  }
})
