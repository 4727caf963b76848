/**
 * Fuzz targets for the traffic policy: random documents (as YAML text and as values)
 * into the loader and compiler, and random CEL expressions evaluated over random
 * requests through the compiled policy's own phases. Shared by the bounded run in
 * `npm test` (policy-fuzz.test.ts) and `npm run fuzz` (10^6 cases each).
 *
 * Each input must compile or be refused with a PolicyError whose code is in the policy
 * catalogue and whose message is one line; a compiled policy must answer every request
 * and response, or fail with a coded error, never throw anything else.
 */
import fc from 'fast-check'
import { Readable } from 'node:stream'
import { compilePolicy, createPolicyState, parsePolicyText, PolicyError, PolicyErrorCodes, type PolicyRequest } from '@gw/cli/policy/index'
import { CodedError } from '@gw/protocol'

/** CEL pieces that type-check against gw's variables, and ones that do not. */
const atoms = fc.constantFrom(
  'req.method', 'req.url.path', 'req.url.query', 'req.url.host', 'req.url.raw', 'req.url', 'req.host', 'req.headers', "req.headers['x-a']", "req.headers['x-a'][0]",
  "req.url.query_params['q']", 'req.cookies', "req.cookies['s'][0].value", 'req.content_length', 'req.user_agent.browser', 'req.ts.header_received',
  'conn.client_ip', 'conn.client_port', 'conn.ts.start', 'time.now', 'endpoint.host', 'endpoint.url', 'res.status_code', "res.headers['content-type']",
  'vars.x', 'actions.ngrok', "''", "'a'", "'/admin'", '"x"', '0', '1', '-1', '1.5', '9223372036854775807', '18446744073709551615u', 'true', 'false', 'null',
  "b'ab'", '[]', "['a', 1]", '{}', "{'k': 1}", 'rand.double()', 'rand.int(0, 10)', "duration('1s')", "timestamp('2024-01-01T00:00:00Z')",
  'nosuch', 'req.nosuch', 'req.url.nosuch.deeper', 'secrets', "secrets.get('vault', 'name')",
)
const unary = fc.constantFrom('!', '-', '')
const binary = fc.constantFrom(' == ', ' != ', ' && ', ' || ', ' + ', ' - ', ' * ', ' / ', ' % ', ' < ', ' >= ', ' in ')
const calls = fc.constantFrom(
  '.startsWith(', '.endsWith(', '.contains(', '.matches(', '.size(', '.lowerAscii(', '.split(', '.join(', '.exists(x, ', '.all(x, ', '.map(x, ', '.filter(x, ',
  'size(', 'int(', 'uint(', 'double(', 'string(', 'bytes(', 'has(', 'type(', 'inIpRange(', 'inCidrRange(', 'getReqHeader(', 'url.decode(', 'base64.encode(',
  'json.encode(', 'hash.sha256(', 'math.greatest(', 'ip(', 'cidr(', 'timestamp(', 'duration(',
)

export const expressions: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: atoms, weight: 4 },
    fc.tuple(unary, tie('e')).map(([u, e]) => `${u}${e}`),
    fc.tuple(tie('e'), binary, tie('e')).map(([a, op, b]) => `${a}${op}${b}`),
    fc.tuple(tie('e'), calls, tie('e')).map(([a, c, b]) => (c.startsWith('.') ? `${a}${c}${b})` : `${c}${a}${c.endsWith(', ') ? '' : `, ${b}`})`)),
    fc.tuple(tie('e'), tie('e'), tie('e')).map(([c, a, b]) => `${c} ? ${a} : ${b}`),
    tie('e').map((e) => `(${e})`),
    fc.tuple(tie('e'), fc.string({ maxLength: 4 })).map(([e, junk]) => `${e}${junk}`),
  ),
})).e

/** Expressions that type-check as booleans, so most rules compile and run. */
const strings = fc.constantFrom('req.method', 'req.url.path', 'req.url.query', 'req.host', 'conn.client_ip', 'req.url.raw', "getReqHeader('x-a').join(',')", 'endpoint.host', "'lit'", 'time.now')
const literals = fc.oneof(fc.constantFrom("'/admin'", "'GET'", "''", "'10.'", "'%'", "'\\u00e9'"), fc.string({ maxLength: 6 }).map((x) => `'${x.replace(/['\\]/g, '')}'`))
export const booleans: fc.Arbitrary<string> = fc.letrec<{ b: string }>((tie) => ({
  b: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.tuple(strings, fc.constantFrom(' == ', ' != ', ' < ', ' >= '), literals).map(([a, op, b]) => `${a}${op}${b}`),
    fc.tuple(strings, fc.constantFrom('startsWith', 'endsWith', 'contains', 'matches'), literals).map(([a, f, b]) => `${a}.${f}(${b})`),
    fc.tuple(strings, fc.integer({ min: -1, max: 20 })).map(([a, n]) => `size(${a}) > ${n}`),
    fc.constantFrom("'x-a' in req.headers", 'has(req.headers.x_a)', "inCidrRange(conn.client_ip, '10.0.0.0/8')", 'req.content_length > 3', "req.url.query_params.exists(k, k == 'q')", 'rand.double() < 0.5', 'true', 'false', "int(req.url.query_params['n'][0]) > 2"),
    tie('b').map((b) => `!(${b})`),
    fc.tuple(tie('b'), fc.constantFrom(' && ', ' || '), tie('b')).map(([a, op, b]) => `${a}${op}${b}`),
    fc.tuple(tie('b'), tie('b'), tie('b')).map(([c, a, b]) => `(${c} ? ${a} : ${b})`),
  ),
})).b

const templates = fc.oneof(
  fc.string({ maxLength: 12 }),
  expressions.map((e) => '${' + e + '}'),
  fc.tuple(fc.string({ maxLength: 6 }), expressions, fc.constantFrom('', '}', '${', '$')).map(([a, e, b]) => `${a}\${${e}}${b}`),
)

const configValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    { arbitrary: templates, weight: 3 },
    fc.integer({ min: -2, max: 70_000 }),
    fc.constantFrom(0, 1, 200, 302, 403, 429, 599, 1e21, -0.5, Number.NaN, true, false, null, '1s', '10m', '0s', '-1s', 'sha256', 'hmac', '0.0.0.0/0', '::/0', '10.0.0.0/8', 'bogus/99'),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'x-a', 'name', 'value', 'from', 'to', 'key', 'header', 'status_code'), tie('v'), { maxKeys: 3 }),
  ),
})).v

const CONFIG_KEYS = [
  'status_code', 'headers', 'content', 'format', 'url', 'to', 'from', 'allow', 'deny', 'capacity', 'rate', 'bucket_key', 'algorithm', 'window',
  'credentials', 'realm', 'keys', 'query_param', 'header_name', 'provider', 'secret', 'metadata', 'vars', 'message', 'level', 'algorithms',
  'encodings', 'max_body_size', 'request_body_schema', 'issuer', 'audience', 'jwks', 'upstream', 'upstreams', 'enforce', 'nosuch',
]
const actionTypes = fc.constantFrom(
  'add-headers', 'remove-headers', 'deny', 'custom-response', 'redirect', 'url-rewrite', 'set-vars', 'log', 'restrict-ips', 'rate-limit', 'basic-auth',
  'api-key', 'compress-response', 'transform-body', 'validate-request', 'verify-webhook', 'soap', 'jwt-validation', 'forward', 'circuit-breaker', 'oidc',
  'openid-connect', 'oauth', 'no-such-action', '',
)
/** Actions that may reach the network or keep timers: compiled, never run on random requests. */
const NOT_RUN = new Set(['jwt-validation', 'forward', 'circuit-breaker', 'oidc', 'openid-connect', 'oauth'])

const randomAction = fc.record(
  { type: actionTypes, config: fc.oneof(fc.dictionary(fc.constantFrom(...CONFIG_KEYS), configValue, { maxKeys: 4 }), configValue) },
  { requiredKeys: ['type'] },
)
const status = fc.oneof(fc.integer({ min: 200, max: 599 }), fc.constantFrom(301, 302, 403, 429))
/** Actions as ngrok's docs write them, with templates and expressions from the generators above. */
const usualAction = fc.oneof(
  fc.record({ type: fc.constant('add-headers'), config: fc.record({ headers: fc.dictionary(fc.constantFrom('x-a', 'x-b', 'X-Gw-Oidc-Email'), templates, { minKeys: 1, maxKeys: 2 }) }) }),
  fc.record({ type: fc.constant('remove-headers'), config: fc.record({ headers: fc.array(fc.constantFrom('x-a', 'cookie', 'authorization'), { minLength: 1, maxLength: 2 }) }) }),
  fc.record({ type: fc.constant('deny'), config: fc.record({ status_code: status }) }),
  fc.record({ type: fc.constant('custom-response'), config: fc.record({ status_code: status, content: templates, headers: fc.dictionary(fc.constantFrom('content-type', 'x-a'), templates, { maxKeys: 2 }) }) }),
  fc.record({ type: fc.constant('redirect'), config: fc.record({ to: templates, status_code: fc.constantFrom(301, 302, 307, 308) }) }),
  fc.record({ type: fc.constant('url-rewrite'), config: fc.record({ from: fc.constantFrom('^/a', '/(.*)', '^/admin(/.*)?$', '('), to: fc.oneof(templates, fc.constantFrom('/b', '/x/$1')) }) }),
  fc.record({ type: fc.constant('set-vars'), config: fc.record({ vars: fc.array(fc.dictionary(fc.constantFrom('x', 'y'), templates, { minKeys: 1, maxKeys: 1 }), { minLength: 1, maxLength: 2 }) }) }),
  fc.record({ type: fc.constant('log'), config: fc.record({ metadata: fc.dictionary(fc.constantFrom('k', 'path'), templates, { maxKeys: 2 }) }) }),
  fc.record({ type: fc.constant('restrict-ips'), config: fc.record({ allow: fc.array(fc.constantFrom('10.0.0.0/8', '203.0.113.0/24', '::/0', '::1/128'), { maxLength: 2 }) }) }),
  fc.record({ type: fc.constant('rate-limit'), config: fc.record({ algorithm: fc.constant('sliding_window'), capacity: fc.integer({ min: 1, max: 5 }), rate: fc.constantFrom('60s', '1m', '1s'), bucket_key: fc.array(fc.constantFrom('conn.client_ip', "req.headers['x-a']", 'req.url.path'), { maxLength: 2 }) }) }),
  fc.record({ type: fc.constant('basic-auth'), config: fc.record({ credentials: fc.array(fc.constantFrom('alice:secret1', 'bob:hunter22'), { minLength: 1, maxLength: 2 }) }) }),
  fc.record({ type: fc.constant('compress-response'), config: fc.record({ algorithms: fc.array(fc.constantFrom('gzip', 'br', 'deflate'), { maxLength: 2 }) }, { requiredKeys: [] }) }),
)
const action = fc.oneof({ arbitrary: usualAction, weight: 4 }, { arbitrary: randomAction, weight: 1 })
const rule = fc.record(
  { name: fc.string({ maxLength: 8 }), expressions: fc.array(fc.oneof({ arbitrary: booleans, weight: 4 }, { arbitrary: expressions, weight: 1 }), { maxLength: 2 }), actions: fc.array(action, { minLength: 1, maxLength: 3 }) },
  { requiredKeys: ['actions'] },
)
export const documents: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { arbitrary: fc.record({ on_http_request: fc.array(rule, { maxLength: 3 }), on_http_response: fc.array(rule, { maxLength: 2 }) }, { requiredKeys: [] }), weight: 5 },
  fc.record({ on_http_request: fc.array(rule, { maxLength: 2 }), on_tcp_connect: fc.array(rule, { maxLength: 1 }), nosuch: fc.constant(1) }, { requiredKeys: [] }),
)

const requests = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'PATCH', 'X'),
  target: fc.oneof(fc.constantFrom('/', '/admin', '/a/b?q=1&q=2', '/x?%zz', '/%E2%82%AC', '/?a[b]=1'), fc.stringMatching(/^\/[a-z0-9/._%~?=&-]{0,20}$/)),
  headers: fc.array(fc.tuple(fc.constantFrom('x-a', 'cookie', 'content-type', 'authorization', 'user-agent', 'content-length', 'X-A'), fc.string({ maxLength: 16 })), { maxLength: 4 }),
  clientIp: fc.constantFrom('203.0.113.7', '10.1.2.3', '::1', '2001:db8::1', '::ffff:127.0.0.1'),
  body: fc.oneof(fc.constant(''), fc.constantFrom('{"a":1}', '<x/>', 'a=1&b=2'), fc.string({ maxLength: 40 })),
  status: fc.constantFrom(200, 201, 301, 404, 500),
})

type RandomRequest = typeof requests extends fc.Arbitrary<infer R> ? R : never

function isCoded(err: unknown): boolean {
  return err instanceof CodedError && /^GW_ERR_[A-Z0-9_]+$/.test(err.code)
}

function checkRefusal(err: unknown, what: string): void {
  if (!(err instanceof PolicyError)) throw new Error(`${what}: threw ${String(err)} (${(err as Error)?.constructor?.name}), not a PolicyError`, { cause: err })
  if (!Object.hasOwn(PolicyErrorCodes, err.code)) throw new Error(`${what}: code ${err.code} is not in the policy catalogue`)
  if (err.message.split('\n').length > 2) throw new Error(`${what}: a message of more than two lines: ${JSON.stringify(err.message)}`)
}

/** Runs a compiled policy's phases over one request; only coded errors may come out. */
async function run(doc: Record<string, unknown>, r: RandomRequest): Promise<void> {
  let policy
  try {
    policy = compilePolicy(doc)
  } catch (err) {
    return checkRefusal(err, 'compile')
  }
  const types = ['on_http_request', 'on_http_response'].flatMap((phase) => ((doc[phase] as Array<{ actions: Array<{ type: string }> }>) ?? []).flatMap((ru) => ru.actions.map((a) => a.type)))
  try {
    if (types.some((t) => NOT_RUN.has(t))) return
    const req: PolicyRequest = {
      method: r.method, target: r.target, rawHeaders: r.headers.flat(), host: 'demo.gw.test', scheme: 'https', clientIp: r.clientIp, clientPort: 51000,
      receivedAt: Date.now(), body: Readable.from(r.body === '' ? [] : [Buffer.from(r.body)]),
    }
    const state = createPolicyState()
    try {
      const outcome = await policy.onHttpRequest(req, state)
      if (outcome.kind === 'respond') {
        for await (const _ of outcome.response.body) void _
        return
      }
      const res = await policy.onHttpResponse(req, { status: r.status, rawHeaders: ['content-type', 'application/json'], body: Readable.from([Buffer.from('{"ok":true}')]) }, state)
      for await (const _ of res.body) void _
    } catch (err) {
      if (!isCoded(err)) throw new Error(`evaluate: threw ${String(err)} (${(err as Error)?.constructor?.name}), not a coded error`, { cause: err })
    }
  } finally {
    await policy.close()
  }
}

const loader = fc.property(
  fc.oneof(
    documents.map((d) => JSON.stringify(d)),
    documents.map((d) => yamlish(d)),
    fc.string({ maxLength: 80 }),
    fc.constantFrom('on_http_request:\n  - actions:\n    - type: deny\n', 'on_http_request: [', 'a: &x\n  b: *x\n', 'on_http_request:\n  - actions: - type\n', '{}', '- 1', '"', '!!binary x', 'a: 1\na: 2\n'),
  ),
  (text) => {
    let parsed
    try {
      parsed = parsePolicyText(text, 'fuzz.yml')
    } catch (err) {
      return checkRefusal(err, 'parse')
    }
    try {
      void compilePolicy(parsed.value, { source: parsed.source }).close()
    } catch (err) {
      checkRefusal(err, 'compile')
    }
  },
)

/** A document as YAML of the plain kind people write (block maps and lists). */
function yamlish(value: unknown, indent = ''): string {
  if (Array.isArray(value)) return value.length === 0 ? '[]' : '\n' + value.map((v) => `${indent}- ${yamlish(v, indent + '  ').trimStart()}`).join('\n')
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
    if (entries.length === 0) return '{}'
    return '\n' + entries.map(([k, v]) => `${indent}${k}: ${yamlish(v, indent + '  ')}`).join('\n')
  }
  return JSON.stringify(value) ?? 'null'
}

const evaluator = fc.asyncProperty(documents, requests, (doc, r) => run(doc, r))

/** Expressions alone, in the place most users write them: one rule's expressions, then the request phase. */
const cel = fc.asyncProperty(fc.array(fc.oneof(booleans, expressions), { minLength: 1, maxLength: 3 }), requests, (exprs, r) =>
  run({ on_http_request: [{ expressions: exprs, actions: [{ type: 'add-headers', config: { headers: { 'x-e': '${' + exprs[0] + '}' } } }] }] }, r),
)

export const POLICY_TARGETS: Record<string, fc.IProperty<unknown[]> | fc.IAsyncProperty<unknown[]>> = {
  'policy loader': loader as unknown as fc.IProperty<unknown[]>,
  'policy evaluator': evaluator as unknown as fc.IAsyncProperty<unknown[]>,
  'CEL expressions': cel as unknown as fc.IAsyncProperty<unknown[]>,
}
