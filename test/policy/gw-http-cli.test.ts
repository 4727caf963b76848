/**
 * The new-user path with the real binaries: `gw relay`, then `gw http <port>
 * --policy-file policy.yml` (JWT auth, a rate limit, two routes), hammered like curl
 * would; and a policy that does not validate stops `gw http` before it connects.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { spawnGw, spawnRelay, tempDir, type SpawnedRelay } from '../helpers/stack.js'

async function serve(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ name, url: req.url, sub: req.headers['x-sub'] ?? null }))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, port: (server.address() as AddressInfo).port }
}

test('gw http --policy-file: JWT auth, a rate limit and two routes, as a new user would run it', async () => {
  const dir = tempDir('gw-policy-cli-')
  const web = await serve('web')
  const api = await serve('api')
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid: 'cli-1', alg: 'RS256' }
  const policyFile = join(dir, 'policy.yml')
  writeFileSync(policyFile, `on_http_request:
  - name: auth
    actions:
      - type: jwt-validation
        config:
          issuer: {allow_list: [{value: "https://issuer.test/"}]}
          audience: {allow_list: [{value: "shop"}]}
          http: {tokens: [{type: jwt, method: header, name: Authorization, prefix: "Bearer "}]}
          jws:
            allowed_algorithms: [RS256]
            keys: {inline: [${JSON.stringify(jwk)}]}
  - name: limit
    actions:
      - type: rate-limit
        config: {capacity: 5, rate: 60s, bucket_key: ["actions.ngrok.jwt_validation.tokens[0].payload.sub"]}
  - name: api
    expressions: ["req.url.path.startsWith('/api/')"]
    actions:
      - type: add-headers
        config: {headers: {x-sub: "\${actions.ngrok.jwt_validation.tokens[0].payload.sub}"}}
      - type: forward
        config: {url: "http://127.0.0.1:${api.port}"}
`)
  let relay: SpawnedRelay | undefined
  let agent: ReturnType<typeof spawnGw> | undefined
  try {
    relay = await spawnRelay({ workers: null, stateDir: dir })
    const relayUrl = relay.url
    agent = spawnGw(['http', String(web.port), '--relay', relayUrl, '--policy-file', policyFile, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'],
      { GW_CONFIG: join(dir, 'gw.yml') })
    const tunnel = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
    const host = new URL(tunnel.url).host
    const get = async (path: string, token?: string) => {
      const res = await request(`${relayUrl}${path}`, { headers: { host, ...(token ? { authorization: `Bearer ${token}` } : {}) } })
      return { status: res.statusCode, body: await res.body.text(), headers: res.headers }
    }
    const token = (sub: string) => new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'cli-1' }).setIssuer('https://issuer.test/')
      .setAudience('shop').setSubject(sub).setIssuedAt().setExpirationTime('5m').sign(privateKey)
    const alice = await token('alice')

    const anonymous = await get('/api/orders')
    assert.equal(anonymous.status, 401)
    assert.equal(anonymous.headers['www-authenticate'], 'Bearer realm="gw"')
    const routed = await get('/api/orders', alice)
    assert.deepEqual(JSON.parse(routed.body), { name: 'api', url: '/api/orders', sub: 'alice' })
    assert.equal(JSON.parse((await get('/', alice)).body).name, 'web')
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push((await get('/api/orders', alice)).status)
    assert.deepEqual(statuses, [200, 200, 200, 429, 429], 'five per minute for alice, two already used')
    assert.equal((await get('/api/orders', await token('bob'))).status, 200, 'bob has his own bucket')
  } finally {
    agent?.kill()
    if (agent) await agent.exited
    await relay?.stop()
    for (const s of [web.server, api.server]) {
      s.closeAllConnections()
      await new Promise<void>((r) => s.close(() => r()))
    }
    rmSync(dir, { recursive: true, force: true })
  }
})

test('gw http refuses to start with a policy that does not validate, naming file:line:col', async () => {
  const dir = tempDir('gw-policy-cli-')
  const policyFile = join(dir, 'bad.yml')
  writeFileSync(policyFile, 'on_http_request:\n  - actions:\n      - type: rate-limit\n        config: {capacity: 5, rate: sixty}\n')
  try {
    const gw = spawnGw(['http', '9', '--relay', 'http://127.0.0.1:9', '--policy-file', policyFile, '--no-tui', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    const code = await gw.exited
    assert.notEqual(code, 0)
    const err = gw.stderr().replace(/\s*›\s*/g, ' ')
    assert.match(err, /bad\.yml:4:37: on_http_request\[0\]\.actions\[0\]\.config\.rate: must be a duration such as "60s", "1m" or "500ms", got "sixty"/)
    assert.doesNotMatch(err, /RELAY_UNREACHABLE/, 'it stopped before connecting')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
