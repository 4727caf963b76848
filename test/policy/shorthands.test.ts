import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { compilePolicy, createPolicyState, shorthandsToPolicy, PolicyError } from '@gw/cli/policy/index'
import { parseRateLimit } from '@gw/cli/policy/shorthands'
import { makeRequest } from './helpers.js'

test('no shorthands: an empty policy', () => {
  assert.deepEqual(shorthandsToPolicy({}), {})
  assert.equal(compilePolicy(shorthandsToPolicy({})).empty, true)
})

test('each shorthand becomes the rule a policy file would hold, in gateway order', () => {
  const doc = shorthandsToPolicy({
    route: ['/=3000', '/api=3001', '/api/v2=http://127.0.0.1:3002/v2'],
    rateLimit: '100/60s',
    basicAuth: ['alice:pw'],
    cidrAllow: ['10.0.0.0/8'],
    cidrDeny: ['10.6.6.0/24'],
    jwtIssuer: 'https://idp.example/',
    jwtAudience: 'api',
    apiKeyFile: '/etc/gw/keys.txt',
  })
  assert.deepEqual(doc.on_http_request!.map((r) => r.name), ['cidr', 'basic-auth', 'jwt', 'api-key', 'rate-limit', 'route /api/v2', 'route /api', 'route /'])
  assert.deepEqual(doc.on_http_request![0], { name: 'cidr', actions: [{ type: 'restrict-ips', config: { allow: ['10.0.0.0/8'], deny: ['10.6.6.0/24'] } }] })
  assert.deepEqual(doc.on_http_request![4]!.actions, [{ type: 'rate-limit', config: { name: 'cli', algorithm: 'sliding_window', capacity: 100, rate: '60s', bucket_key: ['conn.client_ip'] } }])
  assert.deepEqual(doc.on_http_request![5], {
    name: 'route /api/v2',
    expressions: ['req.url.path == "/api/v2" || req.url.path.startsWith("/api/v2/")'],
    actions: [{ type: 'forward', config: { url: 'http://127.0.0.1:3002/v2' } }],
  })
  assert.deepEqual(doc.on_http_request![7], { name: 'route /', actions: [{ type: 'forward', config: { url: 'http://localhost:3000' } }] })
})

test('routes: longest prefix wins, and /api does not catch /apix', async () => {
  const policy = compilePolicy(shorthandsToPolicy({ route: ['/=3000', '/api=3001', '/api/v2=3002'] }))
  const pick = async (target: string) => {
    const out = await policy.onHttpRequest(makeRequest({ target }), createPolicyState())
    assert.equal(out.kind, 'forward')
    return out.kind === 'forward' ? out.upstream!.port : 0
  }
  assert.equal(await pick('/api/v2/orders'), 3002)
  assert.equal(await pick('/api/v2'), 3002)
  assert.equal(await pick('/api/orders?x=1'), 3001)
  assert.equal(await pick('/api'), 3001)
  assert.equal(await pick('/apix'), 3000)
  assert.equal(await pick('/'), 3000)
  await policy.close()
})

test('the generated policy validates and works: basic auth, CIDR, rate limit, api key file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-shorthands-'))
  const keys = join(dir, 'keys.txt')
  writeFileSync(keys, `# name and scopes\n${createHash('sha256').update('k-123').digest('hex')} ci read,write\n`)
  let now = 0
  const policy = compilePolicy(shorthandsToPolicy({ basicAuth: ['u:p'], cidrDeny: ['192.0.2.0/24'], rateLimit: '2/s', apiKeyFile: keys }), { now: () => now })
  const go = async (headers: Record<string, string>, clientIp = '198.51.100.9') => {
    const out = await policy.onHttpRequest(makeRequest({ headers, clientIp }), createPolicyState())
    return out.kind === 'respond' ? out.response.status : 200
  }
  const auth = { authorization: `Basic ${Buffer.from('u:p').toString('base64')}`, 'x-api-key': 'k-123' }
  assert.equal(await go({ 'x-api-key': 'k-123' }), 401)
  assert.equal(await go({ authorization: auth.authorization }), 401, 'the api key is required too')
  assert.equal(await go(auth, '192.0.2.5'), 403)
  assert.equal(await go(auth), 200)
  assert.equal(await go(auth), 200)
  assert.equal(await go(auth), 429)
  now += 2000
  assert.equal(await go(auth), 200)
  await policy.close()
})

test('parseRateLimit', () => {
  assert.deepEqual(parseRateLimit('100/60s'), { capacity: 100, rate: '60s' })
  assert.deepEqual(parseRateLimit('10/s'), { capacity: 10, rate: '1s' })
  assert.deepEqual(parseRateLimit('500/min'), { capacity: 500, rate: '1m' })
  assert.deepEqual(parseRateLimit('5 / 2h'), { capacity: 5, rate: '2h' })
  assert.equal(parseRateLimit('100'), undefined)
  assert.equal(parseRateLimit('0/s'), undefined)
  assert.equal(parseRateLimit('ten/s'), undefined)
})

test('bad shorthands name the flag', () => {
  const cases: Array<[Parameters<typeof shorthandsToPolicy>[0], RegExp]> = [
    [{ rateLimit: 'lots' }, /^--rate-limit: "lots" is not <requests>\/<window>, e.g\. 100\/60s or 10\/s$/],
    [{ basicAuth: ['nopass'] }, /^--basic-auth: must be user:password/],
    [{ cidrAllow: ['10.0.0.0/40'] }, /^--cidr-allow: "10\.0\.0\.0\/40" is not a CIDR/],
    [{ jwtAudience: 'api' }, /^--jwt-issuer: is required with --jwt-audience$/],
    [{ jwtIssuer: 'https://idp' }, /^--jwt-audience: is required with --jwt-issuer$/],
    [{ jwtIssuer: 'idp', jwtAudience: 'a' }, /^--jwt-issuer: "idp" is not a URL/],
    [{ route: ['api=3001'] }, /^--route: "api=3001" must be <path prefix>=<upstream>/],
    [{ route: ['/api=ftp://x'] }, /^--route: "ftp:\/\/x" in "\/api=ftp:\/\/x" is not an upstream/],
    [{ route: ['/a=1', '/a=2'] }, /^--route: the prefix \/a is given twice$/],
  ]
  for (const [flags, pattern] of cases) {
    assert.throws(() => shorthandsToPolicy(flags), (err: unknown) => err instanceof PolicyError && pattern.test(err.message) ? true : assert.fail(String(err)))
  }
})
