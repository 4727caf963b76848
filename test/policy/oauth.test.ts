/**
 * `oauth` (ngrok's provider presets, the user's own app) and `openid-connect` (ngrok's
 * name for oidc, with ngrok's field names and special paths), each driven through the
 * real relay and agent against a real OpenID provider (oidc-provider), starting from
 * ngrok's own docs examples.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Provider from 'oidc-provider'
import { compilePolicy } from '@gw/cli/policy/index'
import { startPolicyGateway, startEchoUpstream, type PolicyGateway } from './tunnel-stack.js'
import { Browser } from './browser.js'
import { fixture } from './ngrok-docs.js'

let idpServer: Server
let issuer: string
let oauthGateway: PolicyGateway
let oidcGateway: PolicyGateway
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>
let now = Date.now()
/** Accounts the provider no longer knows: their tokens stop working at userinfo. */
const revoked = new Set<string>()

/** A docs example's policy with its placeholders replaced, as a reader would. */
function fromDocs(id: string, replace: Record<string, unknown>, extraRules: unknown[] = []): unknown {
  const doc = JSON.parse(JSON.stringify(fixture(id).policy)) as { on_http_request: Array<{ actions: Array<{ type: string; config: Record<string, unknown> }> }> }
  const action = doc.on_http_request[0]!.actions[0]!
  Object.assign(action.config, replace)
  doc.on_http_request.push(...(extraRules as never[]))
  return doc
}

before(async () => {
  idpServer = createServer()
  await new Promise<void>((r) => idpServer.listen(0, '127.0.0.1', r))
  issuer = `http://127.0.0.1:${(idpServer.address() as AddressInfo).port}`
  upstream = await startEchoUpstream()
  // ngrok's GitLab example (snippets/traffic-policy/actions/oauth/examples/custom-gitlab-example.mdx),
  // with the reader's app and, since the provider here is local, its endpoints.
  const oauthPolicy = compilePolicy(fromDocs('traffic-policy-actions-oauth-examples-custom-gitlab-example-93b060', {
    client_id: 'gw-oauth', client_secret: 'gw-oauth-secret',
    authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, userinfo_endpoint: `${issuer}/me`,
    idle_session_timeout: '30m', cookie_secret: 'oauth-test', userinfo_refresh_interval: '5m',
  }, [
    { expressions: ["!actions.ngrok.oauth.identity.email.endsWith('@example.test')"], actions: [{ type: 'deny' }] },
    { actions: [{ type: 'add-headers', config: { headers: {
      'x-oauth-name': '${actions.ngrok.oauth.identity.name}', 'x-refreshed': '${actions.ngrok.oauth.userinfo_refreshed}',
    } } }] },
  ]), { now: () => now })
  oauthGateway = await startPolicyGateway(oauthPolicy, upstream.url)
  // ngrok's openid-connect example (traffic-policy/examples/add-authentication.mdx), with ngrok's field names.
  const oidcPolicy = compilePolicy(fromDocs('traffic-policy-examples-add-authentication-47c359', {
    issuer_url: issuer, client_id: 'gw-oidc', client_secret: 'gw-oidc-secret', idle_session_duration: '30m',
    auth_id: 'staff', authz_url_params: { prompt: 'login' },
  }), { now: () => now })
  oidcGateway = await startPolicyGateway(oidcPolicy, upstream.url)
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'gw-oauth', client_secret: 'gw-oauth-secret', redirect_uris: [`${oauthGateway.url}/_gw/oauth/callback`],
        grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: 'gw-oidc', client_secret: 'gw-oidc-secret', redirect_uris: [`${oidcGateway.url}/_gw/oidc/callback/staff`],
        grant_types: ['authorization_code'], response_types: ['code'],
      },
    ],
    async findAccount(_ctx: unknown, id: string) {
      if (revoked.has(id)) return undefined
      return { accountId: id, async claims() { return { sub: id, email: `${id}@${id === 'eve' ? 'evil.test' : 'example.test'}`, email_verified: true, name: `User ${id}` } } }
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    cookies: { keys: ['oauth-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
  })
  idpServer.on('request', provider.callback())
})

after(async () => {
  await oauthGateway.close()
  await oidcGateway.close()
  await upstream.close()
  idpServer.closeAllConnections()
  await new Promise<void>((r) => idpServer.close(() => r()))
})

async function logIn(browser: Browser, url: string, login: string): Promise<Response> {
  let res = await browser.fetch(url)
  res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, { login, password: 'any' })
  if ((res.headers.get('content-type') ?? '').includes('text/html')) res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, {})
  return res
}

test('oauth, ngrok\'s gitlab example with the reader\'s app: login through the provider, identity from userinfo, rules on actions.ngrok.oauth', async () => {
  const browser = new Browser()
  const res = await logIn(browser, `${oauthGateway.url}/repo?x=1`, 'alice')
  assert.equal(res.status, 200, browser.trail.join('\n'))
  const auth = browser.trail.find((t) => t.startsWith(`GET ${issuer}/auth?`))!
  const q = new URL(auth.slice(4)).searchParams
  assert.equal(q.get('code_challenge_method'), 'S256')
  assert.deepEqual(q.get('scope')!.split(' ').sort(), ['email', 'openid', 'profile'])
  assert.equal(q.get('redirect_uri'), `${oauthGateway.url}/_gw/oauth/callback`)
  const echoed = (await res.json()) as { url: string; headers: Record<string, string> }
  assert.equal(echoed.url, '/repo?x=1')
  assert.equal(echoed.headers['x-gw-oidc-sub'], 'alice')
  assert.equal(echoed.headers['x-gw-oidc-email'], 'alice@example.test')
  assert.equal(echoed.headers['x-oauth-name'], 'User alice')
  assert.ok(!(echoed.headers['cookie'] ?? '').includes('gw_oauth'), 'the session cookie stays with gw')

  // The session serves the next request without the provider; a forged identity header is replaced.
  browser.trail = []
  const again = await browser.fetch(`${oauthGateway.url}/next`, { headers: { 'x-gw-oidc-email': 'mallory@evil.test' } })
  assert.equal(((await again.json()) as { headers: Record<string, string> }).headers['x-gw-oidc-email'], 'alice@example.test')
  assert.equal(browser.trail.length, 1)

  // /ngrok/logout ends gw's session and goes to redirect_path, which logs in again at the
  // provider (whose own session still holds, so without a form).
  browser.trail = []
  const out = await browser.fetch(`${oauthGateway.url}/ngrok/logout?redirect_path=/bye`)
  assert.equal(((await out.json()) as { url: string }).url, '/bye')
  assert.equal(browser.trail[1], `GET ${oauthGateway.url}/bye`)
  assert.ok(browser.trail[2]!.startsWith(`GET ${issuer}/auth?`), browser.trail.join('\n'))
})

test('oauth userinfo_refresh_interval: the identity is read again from the provider, and a user it no longer knows logs in again', async () => {
  const browser = new Browser()
  let res = await logIn(browser, `${oauthGateway.url}/start`, 'carol')
  assert.equal(((await res.json()) as { headers: Record<string, string> }).headers['x-refreshed'], 'false')
  now += 6 * 60_000
  browser.trail = []
  res = await browser.fetch(`${oauthGateway.url}/later`)
  const later = (await res.json()) as { headers: Record<string, string> }
  assert.equal(later.headers['x-refreshed'], 'true')
  assert.equal(later.headers['x-gw-oidc-email'], 'carol@example.test')
  assert.equal(browser.trail.length, 1, 'a back-channel call: the browser saw no redirect')
  // The provider drops carol: at the next refresh her token is refused and the session ends.
  revoked.add('carol')
  now += 6 * 60_000
  const again = await fetch(`${oauthGateway.url}/again`, { redirect: 'manual', headers: { cookie: [...browser.jar.get(new URL(oauthGateway.url).host)!].map(([k, v]) => `${k}=${v}`).join('; '), accept: 'text/html' } })
  assert.equal(again.status, 302)
  assert.ok(again.headers.get('location')!.startsWith(`${issuer}/auth?`), again.headers.get('location')!)
  await again.arrayBuffer()
})

test('oauth: a user the rules refuse gets 403; a non-browser request without a session 401; a forged callback 400', async () => {
  const res = await logIn(new Browser(), `${oauthGateway.url}/`, 'eve')
  assert.equal(res.status, 403)
  await res.arrayBuffer()
  const api = await fetch(`${oauthGateway.url}/api`, { method: 'POST', body: '{}' })
  assert.equal(api.status, 401)
  await api.arrayBuffer()
  const forged = await fetch(`${oauthGateway.url}/_gw/oauth/callback?code=x&state=forged`, { redirect: 'manual' })
  assert.equal(forged.status, 400)
  await forged.arrayBuffer()
})

test('oauth: an unreachable token endpoint answers 502 GW_ERR_POLICY_IDP_UNREACHABLE', async () => {
  const dead = createServer()
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r))
  const deadUrl = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`
  await new Promise<void>((r) => dead.close(() => r()))
  const gw = await startPolicyGateway(compilePolicy({ on_http_request: [{ actions: [{ type: 'oauth', config: {
    provider: 'google', client_id: 'a', client_secret: 'b', authorization_endpoint: `${issuer}/auth`, token_endpoint: `${deadUrl}/token`,
  } }] }] }), upstream.url)
  try {
    // The callback with a valid transaction needs the cookie the login set.
    const first = await fetch(`${gw.url}/`, { redirect: 'manual' })
    const state = new URL(first.headers.get('location')!).searchParams.get('state')!
    const tx = first.headers.getSetCookie()[0]!.split(';')[0]!
    await first.arrayBuffer()
    const res = await fetch(`${gw.url}/_gw/oauth/callback?code=abc&state=${state}`, { headers: { cookie: tx }, redirect: 'manual' })
    assert.equal(res.status, 502)
    assert.equal(res.headers.get('gw-error-code'), 'GW_ERR_POLICY_IDP_UNREACHABLE')
    await res.arrayBuffer()
  } finally {
    await gw.close()
  }
})

test('openid-connect, ngrok\'s example with ngrok\'s field names: auth_id, authz_url_params, idle_session_duration, /ngrok/login and /ngrok/logout', async () => {
  const browser = new Browser()
  let res = await logIn(browser, `${oidcGateway.url}/ngrok/login?auth_id=staff&redirect_path=/home`, 'bob')
  assert.equal(res.status, 200, browser.trail.join('\n'))
  const auth = new URL(browser.trail.find((t) => t.startsWith(`GET ${issuer}/auth?`))!.slice(4)).searchParams
  assert.equal(auth.get('prompt'), 'login')
  const echoed = (await res.json()) as { url: string; headers: Record<string, string> }
  assert.equal(echoed.url, '/home')
  assert.equal(echoed.headers['x-gw-oidc-email'], 'bob@example.test')
  // The docs example's add-headers rule: actions.ngrok.oidc.identity_token is the ID token (a JWT for this client).
  assert.equal(echoed.headers['x-user-email'], 'bob@example.test')
  const [, payload] = echoed.headers['x-identity-token']!.split('.')
  assert.equal((JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { aud: string }).aud, 'gw-oidc')
  // idle_session_duration: 30 minutes without a request ends the session.
  now += 31 * 60_000
  browser.trail = []
  res = await browser.fetch(`${oidcGateway.url}/x`)
  await res.arrayBuffer()
  assert.ok(browser.trail.some((t) => t.startsWith(`GET ${issuer}/auth?`)), 'the idle session logs in again')
  // /ngrok/logout for another auth_id is not this action's: it reaches the upstream behind the login.
  const other = await fetch(`${oidcGateway.url}/ngrok/logout?auth_id=other`, { redirect: 'manual' })
  assert.equal(other.status, 302)
  assert.match(other.headers.get('location')!, /\/auth\?/)
  await other.arrayBuffer()
  const mine = await fetch(`${oidcGateway.url}/ngrok/logout?auth_id=staff`, { redirect: 'manual' })
  assert.equal(mine.status, 302)
  assert.equal(mine.headers.get('location'), '/')
  assert.match(mine.headers.getSetCookie().join('\n'), /gw_oidc_staff=; .*Max-Age=0/)
  await mine.arrayBuffer()
})

test('oauth and openid-connect refuse what they cannot do, saying what to do', () => {
  const err = (config: Record<string, unknown>, type = 'oauth') => {
    try {
      compilePolicy({ on_http_request: [{ actions: [{ type, config }] }] })
      return ''
    } catch (e) {
      return (e as Error).message
    }
  }
  assert.match(err({ provider: 'google' }), /client_id: is required: without it ngrok uses its managed google app, which exists only in ngrok's cloud; register an OAuth app/)
  assert.match(err({ provider: 'myspace', client_id: 'a', client_secret: 'b' }), /provider: is not a known value: "myspace"; allowed values: amazon, facebook, github, gitlab, google, linkedin, microsoft, twitch/)
  assert.match(err({ provider: 'github', client_id: 'a' }), /client_secret: is required with client_id/)
  assert.match(err({ provider: 'github', client_id: 'a', client_secret: 'b', authz_url_params: { state: 'x' } }), /authz_url_params: cannot set state/)
  assert.match(err({ provider: 'github', client_id: 'a', client_secret: 'b', token_endpoint: 'ftp://x' }), /token_endpoint: must be an http\(s\) URL, got "ftp:\/\/x"/)
  assert.match(err({ issuer_url: 'YOUR_ISSUER', client_id: 'a' }, 'openid-connect'), /issuer_url: must be a URL, e.g. https:\/\/accounts.google.com, got "YOUR_ISSUER"/)
  assert.match(err({ issuer_url: 'https://a.test', client_id: 'a', idle_session_duration: '1h', idle_session_timeout: '1h' }, 'openid-connect'), /idle_session_timeout: is the other name of idle_session_duration/)
  assert.match(err({ issuer_url: 'https://a.test', client_id: 'a', auth_id: 'a b' }, 'openid-connect'), /auth_id: must be 1 to 64 letters/)
})
