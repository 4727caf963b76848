import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Provider from 'oidc-provider'
import { compilePolicy } from '@gw/cli/policy/index'
import { startPolicyGateway, startEchoUpstream, type PolicyGateway } from './tunnel-stack.js'
import { Browser } from './browser.js'

let idpServer: Server
let issuer: string
let gateway: PolicyGateway
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>
let now = Date.now()

before(async () => {
  idpServer = createServer()
  await new Promise<void>((r) => idpServer.listen(0, '127.0.0.1', r))
  issuer = `http://127.0.0.1:${(idpServer.address() as AddressInfo).port}`
  upstream = await startEchoUpstream()
  // The gateway must exist before the client is registered (its URL is the redirect URI),
  // so the policy is compiled first and the provider is set up after.
  const policy = compilePolicy({ on_http_request: [
    { actions: [{ type: 'oidc', config: {
      issuer_url: issuer, client_id: 'gw-test', client_secret: 'gw-test-secret', scopes: ['openid', 'email', 'profile'],
      max_session_duration: '2h', idle_session_timeout: '30m', cookie_secret: 'test-secret',
    } }] },
    { expressions: ["!actions.ngrok.oidc.identity.email.endsWith('@example.test')"], actions: [{ type: 'deny' }] },
  ] }, { now: () => now })
  gateway = await startPolicyGateway(policy, upstream.url)
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'gw-test', client_secret: 'gw-test-secret', redirect_uris: [`${gateway.url}/_gw/oidc/callback`],
      grant_types: ['authorization_code'], response_types: ['code'],
    }],
    async findAccount(_ctx: unknown, id: string) {
      return { accountId: id, async claims() { return { sub: id, email: `${id}@example.test`, email_verified: true, name: `User ${id}` } } }
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    cookies: { keys: ['oidc-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
  })
  idpServer.on('request', provider.callback())
})

after(async () => {
  await gateway.close()
  await upstream.close()
  idpServer.closeAllConnections()
  await new Promise<void>((r) => idpServer.close(() => r()))
})

test('OIDC login: the whole redirect dance against oidc-provider, then the identity reaches the upstream', async () => {
  const browser = new Browser()
  // 1. Not logged in: the gateway redirects to the provider, which shows its login form.
  let res = await browser.fetch(`${gateway.url}/dashboard?tab=2`)
  assert.equal(res.status, 200)
  assert.ok(browser.trail.some((t) => t.includes(`${issuer}/auth?`) && t.includes('code_challenge_method=S256')), browser.trail.join('\n'))
  // 2. Log in, 3. consent; the provider redirects back to the callback, which sets the
  // session and returns to the original URL, which the upstream answers.
  res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, { login: 'alice', password: 'any' })
  if ((res.headers.get('content-type') ?? '').includes('text/html')) {
    res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, {})
  }
  assert.equal(res.status, 200, browser.trail.join('\n'))
  const echoed = (await res.json()) as { url: string; headers: Record<string, string> }
  assert.equal(echoed.url, '/dashboard?tab=2')
  assert.equal(echoed.headers['x-gw-oidc-sub'], 'alice')
  assert.equal(echoed.headers['x-gw-oidc-email'], 'alice@example.test')
  assert.equal(echoed.headers['x-gw-oidc-name'], 'User alice')
  assert.ok(!(echoed.headers['cookie'] ?? '').includes('gw_oidc'), 'the session cookie is not passed upstream')
  assert.ok(browser.trail.some((t) => t.includes('/_gw/oidc/callback?code=')))

  // The session works for the next request without the provider, and forged identity headers are dropped.
  browser.trail = []
  res = await browser.fetch(`${gateway.url}/again`, { headers: { 'x-gw-oidc-email': 'mallory@evil.test' } })
  const again = (await res.json()) as { headers: Record<string, string> }
  assert.equal(again.headers['x-gw-oidc-email'], 'alice@example.test')
  assert.equal(browser.trail.length, 1)

  // Idle timeout: after 31 minutes without a request, the session is over.
  now += 31 * 60_000
  browser.trail = []
  res = await browser.fetch(`${gateway.url}/later`)
  assert.ok(browser.trail.some((t) => t.startsWith(`GET ${issuer}/auth?`)), 'idle session sends the user to log in again')
  await res.arrayBuffer()
})

test('OIDC: a non-browser request without a session gets 401; logout clears the cookie; a forged state is refused', async () => {
  let res = await fetch(`${gateway.url}/api`, { method: 'POST', body: '{}' })
  assert.equal(res.status, 401)
  await res.arrayBuffer()
  res = await fetch(`${gateway.url}/_gw/oidc/logout`, { redirect: 'manual' })
  assert.equal(res.status, 302)
  assert.match(res.headers.getSetCookie().join('\n'), /gw_oidc=; .*Max-Age=0/)
  await res.arrayBuffer()
  res = await fetch(`${gateway.url}/_gw/oidc/callback?code=x&state=forged`, { redirect: 'manual' })
  assert.equal(res.status, 400)
  await res.arrayBuffer()
})

test('OIDC: max_session_duration ends a session even while it stays active', async () => {
  const browser = new Browser()
  let res = await browser.fetch(`${gateway.url}/start`)
  res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, { login: 'bob', password: 'any' })
  if ((res.headers.get('content-type') ?? '').includes('text/html')) {
    res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, {})
  }
  assert.equal(((await res.json()) as { headers: Record<string, string> }).headers['x-gw-oidc-sub'], 'bob')
  const loggedInAt = now
  // A request every 20 minutes keeps the session under its 30-minute idle timeout…
  while (now - loggedInAt < 2 * 3600_000 - 20 * 60_000) {
    now += 20 * 60_000
    browser.trail = []
    res = await browser.fetch(`${gateway.url}/tick`)
    assert.equal(browser.trail.length, 1, `still logged in ${(now - loggedInAt) / 60_000} minutes in`)
    await res.arrayBuffer()
  }
  // …but not past the 2-hour maximum.
  now += 25 * 60_000
  browser.trail = []
  res = await browser.fetch(`${gateway.url}/tick`)
  assert.ok(browser.trail.some((t) => t.startsWith(`GET ${issuer}/auth?`)), 'past max_session_duration the user logs in again')
  await res.arrayBuffer()
})
