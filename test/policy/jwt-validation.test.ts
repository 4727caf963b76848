import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SignJWT, exportJWK, generateKeyPair, type JWK, type CryptoKey } from 'jose'
import { compilePolicy, createPolicyState, type CompiledPolicy } from '@gw/cli/policy/index'
import { makeRequest, readAll, header } from './helpers.js'

interface Key { kid: string; alg: string; privateKey: CryptoKey; jwk: JWK }
async function makeKey(kid: string, alg: 'RS256' | 'ES256' | 'RS384'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, privateKey, jwk }
}

let server: Server
let base: string
let published: Key[] = []
let jwksFetches = 0

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks.json` }))
      return
    }
    if (req.url === '/jwks.json') {
      jwksFetches++
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }))
      return
    }
    res.statusCode = 404
    res.end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(() => new Promise<void>((r) => server.close(() => r())))

function sign(key: Key, claims: Record<string, unknown> = {}, opts: { aud?: string; iss?: string; exp?: number; nbf?: number; iat?: number } = {}) {
  const nowS = Math.floor(Date.now() / 1000)
  return new SignJWT({ scope: 'read write', ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuer(opts.iss ?? base)
    .setAudience(opts.aud ?? 'orders-api')
    .setSubject('user-1')
    .setIssuedAt(opts.iat ?? nowS)
    .setExpirationTime(opts.exp ?? nowS + 300)
    .setNotBefore(opts.nbf ?? nowS - 1)
    .sign(key.privateKey)
}

function policyDoc(keys: unknown, algs = ['RS256', 'ES256']) {
  return {
    on_http_request: [
      { actions: [{ type: 'jwt-validation', config: {
        issuer: { allow_list: [{ value: base }] },
        audience: { allow_list: [{ value: 'orders-api' }] },
        http: { tokens: [{ type: 'jwt', method: 'header', name: 'Authorization', prefix: 'Bearer ' }] },
        jws: { allowed_algorithms: algs, keys },
        jwks_refresh_cooldown: '0s',
      } }] },
      { expressions: ["actions.ngrok.jwt_validation.tokens[0].payload.sub == 'user-1'"], actions: [
        { type: 'add-headers', config: { headers: { 'x-sub': '${actions.ngrok.jwt_validation.tokens[0].payload.sub}' } } },
      ] },
      { expressions: ["!('admin' in actions.ngrok.jwt_validation.tokens[0].payload.scope.split(' '))", "req.url.path.startsWith('/admin')"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
    ],
  }
}

async function call(policy: CompiledPolicy, token: string | undefined, target = '/orders') {
  const req = makeRequest({ target, headers: token === undefined ? {} : { Authorization: `Bearer ${token}` } })
  const outcome = await policy.onHttpRequest(req, createPolicyState())
  return { outcome, req }
}

test('RSA and EC tokens verify against a JWKS served locally; claims reach later rules', async () => {
  const rsa = await makeKey('rsa-1', 'RS256')
  const ec = await makeKey('ec-1', 'ES256')
  published = [rsa, ec]
  const policy = compilePolicy(policyDoc({ sources: { additional_jkus: [`${base}/jwks.json`] } }))
  try {
    for (const key of [rsa, ec]) {
      const { outcome, req } = await call(policy, await sign(key))
      assert.equal(outcome.kind, 'forward', key.kid)
      assert.equal(header(req.rawHeaders, 'x-sub'), 'user-1')
    }
    const admin = await call(policy, await sign(rsa), '/admin/x')
    assert.equal(admin.outcome.kind === 'respond' && admin.outcome.response.status, 403, 'authorization rule on claims')
    const ok = await call(policy, await sign(rsa, { scope: 'admin' }), '/admin/x')
    assert.equal(ok.outcome.kind, 'forward')
  } finally {
    await policy.close()
  }
})

test('401 with RFC 6750 errors: missing, wrong audience, wrong issuer, expired, bad signature, algorithm not allowed', async () => {
  const rsa = await makeKey('rsa-2', 'RS256')
  const other = await makeKey('rsa-2', 'RS256') // same kid, different key: signature fails
  const rs384 = await makeKey('rsa-384', 'RS384')
  published = [rsa, rs384]
  const policy = compilePolicy(policyDoc([{ identification: [{ token_claims: ['kid'] }], sources: [{ additional_jkus: [`${base}/jwks.json`] }] }], ['RS256']))
  const nowS = Math.floor(Date.now() / 1000)
  try {
    const missing = await call(policy, undefined)
    assert.equal(missing.outcome.kind, 'respond')
    if (missing.outcome.kind !== 'respond') return
    assert.equal(missing.outcome.response.status, 401)
    assert.equal(header(missing.outcome.response.rawHeaders, 'www-authenticate'), 'Bearer realm="gw"')

    const cases: Array<[string, Promise<string>, RegExp]> = [
      ['audience', sign(rsa, {}, { aud: 'other-api' }), /aud claim/],
      ['issuer', sign(rsa, {}, { iss: 'https://evil.example' }), /iss claim/],
      ['expired', sign(rsa, {}, { exp: nowS - 3600, iat: nowS - 7200, nbf: nowS - 7200 }), /expired/],
      ['signature', sign(other), /signature/],
      ['algorithm', sign(rs384), /algorithm/],
      ['garbage', Promise.resolve('not.a.jwt'), /malformed/],
    ]
    for (const [what, tokenP, pattern] of cases) {
      const r = await call(policy, await tokenP)
      assert.equal(r.outcome.kind, 'respond', what)
      if (r.outcome.kind !== 'respond') continue
      assert.equal(r.outcome.response.status, 401, what)
      const challenge = header(r.outcome.response.rawHeaders, 'www-authenticate') ?? ''
      assert.match(challenge, /^Bearer realm="gw", error="invalid_token", error_description="/, what)
      assert.match(challenge, pattern, what)
      const body = JSON.parse((await readAll(r.outcome.response.body)).toString())
      assert.equal(body.error, 'invalid_token')
    }
  } finally {
    await policy.close()
  }
})

test('expiry and not-before use the injected clock with clock skew', async () => {
  const rsa = await makeKey('rsa-3', 'RS256')
  published = [rsa]
  let now = Date.now()
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'jwt-validation', config: {
    issuer: { allow_list: [{ value: base }] }, audience: { allow_list: [{ value: 'orders-api' }] },
    http: { tokens: [{ type: 'jwt', method: 'header', name: 'Authorization', prefix: 'Bearer ' }] },
    jws: { allowed_algorithms: ['RS256'], keys: { sources: { additional_jkus: [`${base}/jwks.json`] } } },
    clock_skew: '10s',
  } }] }] }, { now: () => now })
  try {
    const nowS = Math.floor(now / 1000)
    const token = await sign(rsa, {}, { nbf: nowS + 5, exp: nowS + 60 })
    assert.equal((await call(policy, token)).outcome.kind, 'forward', 'nbf 5s ahead is within 10s skew')
    now += 65_000
    assert.equal((await call(policy, token)).outcome.kind, 'forward', 'exp 5s ago is within 10s skew')
    now += 10_000
    assert.equal((await call(policy, token)).outcome.kind, 'respond', 'expired beyond the skew')
  } finally {
    await policy.close()
  }
})

test('key rotation: an unknown kid refetches the JWKS; keys found through OIDC discovery', async () => {
  const first = await makeKey('gen-1', 'RS256')
  const second = await makeKey('gen-2', 'ES256')
  published = [first]
  // No key source: the issuer's discovery document names the JWKS.
  const policy = compilePolicy(policyDoc(undefined))
  try {
    assert.equal((await call(policy, await sign(first))).outcome.kind, 'forward')
    const before = jwksFetches
    published = [second]
    assert.equal((await call(policy, await sign(second))).outcome.kind, 'forward', 'the rotated key is fetched')
    assert.equal(jwksFetches, before + 1)
    assert.equal((await call(policy, await sign(second))).outcome.kind, 'forward')
    assert.equal(jwksFetches, before + 1, 'the JWKS is cached between requests')
    const old = await call(policy, await sign(first))
    assert.equal(old.outcome.kind, 'respond', 'a retired key no longer verifies')
  } finally {
    await policy.close()
  }
})

test('inline keys', async () => {
  const ec = await makeKey('inline-1', 'ES256')
  const policy = compilePolicy(policyDoc({ inline: [ec.jwk] }))
  assert.equal((await call(policy, await sign(ec))).outcome.kind, 'forward')
  await policy.close()
})

test('audience is optional, as in ngrok: without it any aud passes, but the issuer and signature are still checked', async () => {
  const ec = await makeKey('noaud-1', 'ES256')
  const other = await makeKey('noaud-2', 'ES256')
  const doc = policyDoc({ inline: [ec.jwk] }) as { on_http_request: Array<{ actions: Array<{ config: Record<string, unknown> }> }> }
  delete doc.on_http_request[0]!.actions[0]!.config.audience
  const policy = compilePolicy(doc)
  try {
    assert.equal((await call(policy, await sign(ec, {}, { aud: 'any-api' }))).outcome.kind, 'forward')
    assert.equal((await call(policy, await sign(ec, {}, { iss: 'https://evil.test/' }))).outcome.kind, 'respond')
    assert.equal((await call(policy, await sign(other))).outcome.kind, 'respond')
  } finally {
    await policy.close()
  }
})

test('tokens in the body (method: body), JSON or form; the body still reaches the upstream', async () => {
  const ec = await makeKey('body-1', 'ES256')
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'jwt-validation', config: {
    issuer: { allow_list: [{ value: base }] }, audience: { allow_list: [{ value: 'orders-api' }] },
    http: { tokens: [{ type: 'jwt', method: 'body', name: 'id_token' }] },
    jws: { allowed_algorithms: ['ES256'], keys: { inline: [ec.jwk] } },
  } }] }] })
  const token = await sign(ec)
  for (const [type, body] of [['application/json', JSON.stringify({ id_token: token, x: 1 })], ['application/x-www-form-urlencoded', `x=1&id_token=${token}`]] as const) {
    const req = makeRequest({ method: 'POST', headers: { 'content-type': type }, body })
    const out = await policy.onHttpRequest(req, createPolicyState())
    assert.equal(out.kind, 'forward', type)
    assert.equal((await readAll(req.body)).toString(), body)
  }
  const none = await policy.onHttpRequest(makeRequest({ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), createPolicyState())
  assert.equal(none.kind === 'respond' && none.response.status, 401)
  await policy.close()
})
