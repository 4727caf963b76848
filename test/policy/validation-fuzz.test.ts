/**
 * Whatever document it is given, compilePolicy either compiles it or throws a
 * PolicyError with a location: never a TypeError from deep inside an action.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ACTIONS, compilePolicy, PolicyError } from '@gw/cli/policy/index'

const FIELDS = [
  'status_code', 'body', 'content', 'headers', 'credentials', 'realm', 'enforce', 'allow', 'deny', 'from', 'to', 'capacity', 'rate',
  'algorithm', 'bucket_key', 'mode', 'max_delay', 'name', 'metadata', 'vars', 'upstream', 'url', 'provider', 'secret', 'tolerance',
  'issuer', 'audience', 'http', 'jws', 'issuer_url', 'client_id', 'scopes', 'keys', 'header', 'query_param', 'error_threshold',
  'volume_threshold', 'window_duration', 'tripped_duration', 'num_buckets', 'algorithms', 'min_size', 'version', 'namespace',
  'operation', 'action', 'path', 'root', 'body_schema', 'query_schema', 'max_body_size',
]

const value = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('60s', '1m', '10.0.0.0/8', 'a:b', "req.method == 'GET'", '${conn.client_ip}', '${', 'json', 'xml', 'github', '1.1', 'reject', 'delay'),
  fc.array(fc.constantFrom('10.0.0.0/8', 'conn.client_ip', 'x:y', 'gzip', 'RS256'), { maxLength: 3 }),
)
const action = fc.record({
  type: fc.oneof(fc.constantFrom(...ACTIONS.keys()), fc.string()),
  config: fc.oneof(fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 5 }), fc.jsonValue({ maxDepth: 1 })),
}, { requiredKeys: [] })
const rule = fc.record({
  name: fc.oneof(fc.string(), fc.integer()),
  expressions: fc.oneof(fc.array(fc.constantFrom("req.url.path.startsWith('/a')", 'true', 'req.method', '1 +', "hasReqHeader('x')"), { maxLength: 3 }), fc.string()),
  actions: fc.oneof(fc.array(action, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
}, { requiredKeys: [] })
const doc = fc.oneof(
  fc.record({ on_http_request: fc.array(rule, { maxLength: 3 }), on_http_response: fc.array(rule, { maxLength: 2 }) }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 3 }),
)

test('compilePolicy compiles or throws a located PolicyError, for any document', async () => {
  await fc.assert(fc.asyncProperty(doc, async (d) => {
    try {
      const policy = compilePolicy(d)
      await policy.close()
    } catch (err) {
      if (!(err instanceof PolicyError)) throw new Error(`${(err as Error).stack}\nfor ${JSON.stringify(d)}`)
      assert.ok(err.location?.path, 'a path is always given')
    }
  }), { numRuns: Number(process.env.GW_FUZZ_RUNS ?? 400) })
})

test('a rich policy answers any request without throwing', async () => {
  const { createPolicyState } = await import('@gw/cli/policy/index')
  const { makeRequest } = await import('./helpers.js')
  const policy = compilePolicy({
    on_http_request: [
      { actions: [{ type: 'restrict-ips', config: { deny: ['192.0.2.0/24', '2001:db8::/32'] } }] },
      { expressions: ["req.url.path.startsWith('/admin')"], actions: [{ type: 'basic-auth', config: { credentials: ['a:b'] } }] },
      { expressions: ["hasReqHeader('x-key')"], actions: [{ type: 'api-key', config: { header: 'x-key', keys: [{ name: 'k', hash: '0'.repeat(64) }], enforce: false } }] },
      { actions: [{ type: 'rate-limit', config: { capacity: 1000000, rate: '1s', bucket_key: ["getReqHeader('x-user')", 'req.url.query_params'] } }] },
      { actions: [{ type: 'set-vars', config: { vars: [{ q: "${getQueryParam('q')}" }, { c: "${req.cookies}" }] } }] },
      { expressions: ["req.url.path.matches('^/r/')"], actions: [{ type: 'url-rewrite', config: { from: '/r/(.*)', to: '/rewritten/$1?from=${req.url.raw_path}' } }] },
      { expressions: ["req.url.path == '/go'"], actions: [{ type: 'redirect', config: { to: 'https://${req.host}${req.url.path}' } }] },
      { actions: [{ type: 'add-headers', config: { headers: { 'x-ip': '${conn.client_ip}', 'x-ua': '${req.user_agent}', 'x-len': '${req.content_length}' } } }] },
    ],
  })
  const headerName = fc.constantFrom('authorization', 'x-key', 'x-user', 'cookie', 'user-agent', 'content-length', 'host', 'X-Weird')
  const headerValue = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('Basic !!!', 'Basic ' + Buffer.from('a:b').toString('base64'), 'Basic ', '=;=;a=', '-1', '1e309'))
  const target = fc.oneof(
    fc.webPath().map((p) => p || '/'),
    fc.constantFrom('/admin', '/r/%E0%A4%A', '/go', '/?q=1&q=2&q', '/%', '/a?%zz=1', '*'),
  )
  await fc.assert(fc.asyncProperty(
    fc.constantFrom('GET', 'POST', 'DELETE', 'OPTIONS', 'X'), target,
    fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
    fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('::ffff:192.0.2.1', '', 'not-an-ip')),
    fc.string({ maxLength: 20 }),
    async (method, t, headers, ip, host) => {
      const req = makeRequest({ method, target: t, rawHeaders: headers.flat(), clientIp: ip, host })
      const out = await policy.onHttpRequest(req, createPolicyState())
      assert.ok(out.kind === 'forward' || out.kind === 'respond')
    },
  ), { numRuns: Number(process.env.GW_FUZZ_RUNS ?? 300) })
  await policy.close()
})
