import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compilePolicy, createPolicyState } from '@gw/cli/policy/index'
import { makeRequest, makeResponse, readAll, header, headerAll } from './helpers.js'

async function run(doc: unknown, req = makeRequest()) {
  const policy = compilePolicy(doc)
  const state = createPolicyState()
  const outcome = await policy.onHttpRequest(req, state)
  await policy.close()
  return { outcome, req, state }
}

test('an empty policy is marked empty and forwards', async () => {
  const policy = compilePolicy({})
  assert.equal(policy.empty, true)
  const out = await policy.onHttpRequest(makeRequest(), createPolicyState())
  assert.deepEqual(out, { kind: 'forward', upstream: undefined })
})

test('rule expressions are ANDed, a rule without expressions always matches, and a terminating action ends the phase', async () => {
  const doc = {
    on_http_request: [
      { name: 'admin', expressions: ["req.url.path.startsWith('/admin')", "req.method == 'POST'"], actions: [{ type: 'deny', config: { status_code: 401 } }] },
      { name: 'tag', actions: [{ type: 'add-headers', config: { headers: { 'x-tag': 'one' } } }] },
      { name: 'teapot', expressions: ["req.url.path == '/tea'"], actions: [{ type: 'custom-response', config: { status_code: 418, body: 'short and stout' } }] },
      { name: 'after', actions: [{ type: 'add-headers', config: { headers: { 'x-after': 'yes' } } }] },
    ],
  }
  let r = await run(doc, makeRequest({ method: 'GET', target: '/admin/x' }))
  assert.equal(r.outcome.kind, 'forward')
  assert.equal(header(r.req.rawHeaders, 'x-tag'), 'one')
  assert.equal(header(r.req.rawHeaders, 'x-after'), 'yes')

  r = await run(doc, makeRequest({ method: 'POST', target: '/admin/x' }))
  assert.equal(r.outcome.kind, 'respond')
  if (r.outcome.kind !== 'respond') return
  assert.equal(r.outcome.response.status, 401)
  assert.deepEqual(r.outcome.verdict, { action: 'deny', rule: 'admin', status: 401 })
  assert.equal(header(r.req.rawHeaders, 'x-tag'), undefined)

  r = await run(doc, makeRequest({ target: '/tea' }))
  assert.equal(r.outcome.kind, 'respond')
  if (r.outcome.kind !== 'respond') return
  assert.equal(r.outcome.response.status, 418)
  assert.equal((await readAll(r.outcome.response.body)).toString(), 'short and stout')
  assert.equal(header(r.req.rawHeaders, 'x-after'), undefined, 'the rule after a terminating action did not run')
})

test('ngrok variables and macros', async () => {
  const expressions = [
    "req.method == 'PUT'",
    "req.url.path == '/a b'",
    "req.url.raw_path == '/a%20b'",
    "req.url.query == 'x=1&x=2&y=3'",
    "req.url.query_params['x'] == ['1', '2']",
    "getQueryParam('y') == ['3']",
    "req.host == 'demo.gw.test:8443'",
    "req.url.host == 'demo.gw.test' && req.url.port == 8443 && req.url.scheme == 'https'",
    "req.headers['x-multi'] == ['a', 'b']",
    "hasReqHeader('X-Multi') && !hasReqHeader('x-none')",
    "getReqHeader('user-agent')[0] == 'curl/8'",
    "req.user_agent == 'curl/8'",
    "req.content_type == 'application/json'",
    "req.content_length == 2",
    "getReqCookie('sid') == 'abc'",
    "conn.client_ip == '10.1.2.3' && conn.client_port == 4444",
    "inCidrRange(conn.client_ip, '10.0.0.0/8')",
    "!inCidrRange(conn.client_ip, '192.168.0.0/16')",
    "inCidrRanges(conn.client_ip, ['1.0.0.0/8', '10.1.0.0/16'])",
    "conn.client_ip.isPrivateIp()",
    "timestamp(time.now) > timestamp('2020-01-01T00:00:00Z')",
    "size(req.url.path) > 2 && req.url.path.matches('^/a')",
  ]
  const doc = { on_http_request: [{ expressions, actions: [{ type: 'custom-response', config: { status_code: 200, body: 'all matched' } }] }] }
  const req = makeRequest({
    method: 'PUT', target: '/a%20b?x=1&x=2&y=3', host: 'demo.gw.test:8443', clientIp: '10.1.2.3', clientPort: 4444,
    rawHeaders: ['X-Multi', 'a', 'x-multi', 'b', 'User-Agent', 'curl/8', 'Content-Type', 'application/json', 'Content-Length', '2', 'Cookie', 'sid=abc; other=1'],
  })
  // Check each expression alone too, so a failure names the expression.
  for (const e of expressions) {
    const one = await run({ on_http_request: [{ expressions: [e], actions: [{ type: 'deny' }] }] }, makeRequest({ ...req, rawHeaders: [...req.rawHeaders] }))
    assert.equal(one.outcome.kind, 'respond', `expected a match for ${e}`)
  }
  const all = await run(doc, req)
  assert.equal(all.outcome.kind, 'respond')
})

test('an IPv4-mapped IPv6 client matches IPv4 CIDRs; IPv6 CIDRs work', async () => {
  const doc = { on_http_request: [{ expressions: ["inCidrRange(conn.client_ip, '10.0.0.0/8') || inCidrRange(conn.client_ip, '2001:db8::/32')"], actions: [{ type: 'deny' }] }] }
  for (const ip of ['::ffff:10.9.9.9', '2001:db8::42']) {
    assert.equal((await run(doc, makeRequest({ clientIp: ip }))).outcome.kind, 'respond', ip)
  }
  assert.equal((await run(doc, makeRequest({ clientIp: '2001:db9::1' }))).outcome.kind, 'forward')
})

test('an expression that errors at run time does not match', async () => {
  const doc = { on_http_request: [
    { expressions: ["actions.ngrok.jwt_validation.tokens[0].payload.sub == 'x'"], actions: [{ type: 'deny' }] },
  ] }
  assert.equal((await run(doc)).outcome.kind, 'forward')
})

test('${} interpolation in header values, bodies and set-vars', async () => {
  const doc = {
    on_http_request: [
      { actions: [{ type: 'set-vars', config: { vars: [{ who: '${conn.client_ip}' }, { n: 3 }] } }] },
      { expressions: ['vars.n == 3'], actions: [
        { type: 'add-headers', config: { headers: { 'x-client-ip': '${conn.client_ip}', 'x-path': 'p=${req.url.path} m=${req.method}' } } },
      ] },
      { expressions: ["req.url.path == '/hello'"], actions: [
        { type: 'custom-response', config: { status_code: 200, body: '{"ip":"${vars.who}","brace":"${\'}\'}"}', headers: { 'content-type': 'application/json' } } },
      ] },
    ],
  }
  let r = await run(doc, makeRequest({ target: '/x', clientIp: '198.51.100.1' }))
  assert.equal(header(r.req.rawHeaders, 'x-client-ip'), '198.51.100.1')
  assert.equal(header(r.req.rawHeaders, 'x-path'), 'p=/x m=GET')
  r = await run(doc, makeRequest({ target: '/hello', clientIp: '198.51.100.1' }))
  assert.equal(r.outcome.kind, 'respond')
  if (r.outcome.kind !== 'respond') return
  assert.deepEqual(JSON.parse((await readAll(r.outcome.response.body)).toString()), { ip: '198.51.100.1', brace: '}' })
  assert.equal(header(r.outcome.response.rawHeaders, 'content-type'), 'application/json')
})

test('remove-headers, url-rewrite (seen by the next rule), redirect', async () => {
  const doc = {
    on_http_request: [
      { actions: [{ type: 'remove-headers', config: { headers: ['X-Secret'] } }] },
      { actions: [{ type: 'url-rewrite', config: { from: '/old/([a-z]+)', to: '/new/$1' } }] },
      { expressions: ["req.url.path == '/new/page'"], actions: [{ type: 'add-headers', config: { headers: { 'x-rewritten': 'true' } } }] },
      { expressions: ["req.url.path == '/go'"], actions: [{ type: 'redirect', config: { to: 'https://example.test/landing?from=${req.url.path}', status_code: 301 } }] },
      { actions: [{ type: 'redirect', config: { from: '^http://([^/]+)(.*)$', to: 'https://$1$2' } }] },
    ],
  }
  let r = await run(doc, makeRequest({ target: '/old/page?q=1', rawHeaders: ['X-Secret', 'a', 'x-secret', 'b', 'X-Keep', 'c'] }))
  assert.equal(r.outcome.kind, 'forward')
  assert.equal(r.req.target, '/new/page?q=1')
  assert.deepEqual(r.req.rawHeaders.slice(0, 2), ['X-Keep', 'c'])
  assert.equal(header(r.req.rawHeaders, 'x-rewritten'), 'true')

  r = await run(doc, makeRequest({ target: '/go' }))
  assert.equal(r.outcome.kind, 'respond')
  if (r.outcome.kind !== 'respond') return
  assert.equal(r.outcome.response.status, 301)
  assert.equal(header(r.outcome.response.rawHeaders, 'location'), 'https://example.test/landing?from=/go')

  r = await run(doc, makeRequest({ target: '/plain?x=1', scheme: 'http' }))
  assert.equal(r.outcome.kind, 'respond')
  if (r.outcome.kind !== 'respond') return
  assert.equal(r.outcome.response.status, 302)
  assert.equal(header(r.outcome.response.rawHeaders, 'location'), 'https://demo.gw.test/plain?x=1')
  assert.equal((await run(doc, makeRequest({ target: '/plain', scheme: 'https' }))).outcome.kind, 'forward')
})

test('restrict-ips allow, deny and enforce: false', async () => {
  const doc = { on_http_request: [{ actions: [{ type: 'restrict-ips', config: { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.6.6.0/24'] } }] }] }
  assert.equal((await run(doc, makeRequest({ clientIp: '10.1.1.1' }))).outcome.kind, 'forward')
  assert.equal((await run(doc, makeRequest({ clientIp: '2001:db8::5' }))).outcome.kind, 'forward')
  const denied = await run(doc, makeRequest({ clientIp: '10.6.6.6' }))
  assert.equal(denied.outcome.kind === 'respond' && denied.outcome.response.status, 403)
  const outside = await run(doc, makeRequest({ clientIp: '192.0.2.1' }))
  assert.equal(outside.outcome.kind === 'respond' && outside.outcome.response.status, 403)
  const dry = await run({ on_http_request: [
    { actions: [{ type: 'restrict-ips', config: { allow: ['10.0.0.0/8'], enforce: false } }] },
    { expressions: ['!actions.ngrok.restrict_ips.allowed'], actions: [{ type: 'add-headers', config: { headers: { 'x-would-deny': '1' } } }] },
  ] }, makeRequest({ clientIp: '192.0.2.1' }))
  assert.equal(dry.outcome.kind, 'forward')
  assert.equal(header(dry.req.rawHeaders, 'x-would-deny'), '1')
})

test('basic-auth answers 401 with a challenge and exposes the username', async () => {
  const doc = { on_http_request: [
    { actions: [{ type: 'basic-auth', config: { credentials: ['alice:s3cret', 'bob:pw:with:colons'], realm: 'staff' } }] },
    { expressions: ["actions.ngrok.basic_auth.credentials.username == 'bob'"], actions: [{ type: 'add-headers', config: { headers: { 'x-user': '${actions.ngrok.basic_auth.credentials.username}' } } }] },
  ] }
  const basic = (u: string) => `Basic ${Buffer.from(u).toString('base64')}`
  let r = await run(doc)
  assert.equal(r.outcome.kind, 'respond')
  if (r.outcome.kind !== 'respond') return
  assert.equal(r.outcome.response.status, 401)
  assert.equal(header(r.outcome.response.rawHeaders, 'www-authenticate'), 'Basic realm="staff", charset="UTF-8"')
  r = await run(doc, makeRequest({ headers: { Authorization: basic('alice:wrong') } }))
  assert.equal(r.outcome.kind, 'respond')
  r = await run(doc, makeRequest({ headers: { Authorization: basic('alice:s3cret') } }))
  assert.equal(r.outcome.kind, 'forward')
  r = await run(doc, makeRequest({ headers: { authorization: basic('bob:pw:with:colons') } }))
  assert.equal(r.outcome.kind, 'forward')
  assert.equal(header(r.req.rawHeaders, 'x-user'), 'bob')
})

test('on_http_response: add/remove headers, res variables, custom-response replaces the upstream answer', async () => {
  const policy = compilePolicy({ on_http_response: [
    { actions: [{ type: 'remove-headers', config: { headers: ['server'] } }, { type: 'add-headers', config: { headers: { 'x-status': '${res.status_code}' } } }] },
    { expressions: ['res.status_code >= 500', "res.headers['content-type'][0] == 'text/html'"], actions: [{ type: 'custom-response', config: { status_code: 503, body: 'maintenance' } }] },
  ] })
  const state = createPolicyState()
  const req = makeRequest()
  await policy.onHttpRequest(req, state)
  let res = await policy.onHttpResponse(req, makeResponse(200, { Server: 'x', 'Content-Type': 'text/html' }, 'ok'), state)
  assert.equal(header(res.rawHeaders, 'server'), undefined)
  assert.equal(header(res.rawHeaders, 'x-status'), '200')
  assert.equal((await readAll(res.body)).toString(), 'ok')
  res = await policy.onHttpResponse(req, makeResponse(502, { 'Content-Type': 'text/html' }, 'bad gateway'), createPolicyState())
  assert.equal(res.status, 503)
  assert.equal((await readAll(res.body)).toString(), 'maintenance')
  assert.deepEqual(headerAll(res.rawHeaders, 'x-status'), [])
})

test('log writes to the agent event stream', async () => {
  const { AgentEvents } = await import('@gw/cli/agent/events')
  const events = new AgentEvents()
  const lines: unknown[] = []
  events.on('log', (l) => lines.push(l))
  const policy = compilePolicy({ on_http_request: [{ name: 'audit', actions: [{ type: 'log', config: { metadata: { path: '${req.url.path}', ip: '${conn.client_ip}' } } }] }] }, { events, endpoint: 'web' })
  await policy.onHttpRequest(makeRequest({ target: '/x' }), createPolicyState())
  assert.deepEqual(lines, [{ level: 'info', msg: 'policy log', fields: { phase: 'on_http_request', rule: 'audit', endpoint: 'web', path: '/x', ip: '203.0.113.7' } }])
})

test("ngrok's set-vars example: typed values, nested interpolation, whole-expression values keep their type", async () => {
  const policy = compilePolicy({ on_http_request: [
    { actions: [{ type: 'set-vars', config: { vars: [
      { sample_string: 'bar' }, { sample_double: 1.5 }, { sample_bool: true }, { sample_null: null },
      { sample_list: [1, 2, 3] }, { sample_map: { key: 'value' } }, { sample_nested_map: { key: ['value1', 'value2'] } },
      { ip_list: '${[conn.client_ip, req.method]}' }, { greeting: 'Your IP is ${conn.client_ip}!' }, { nested: { ip: '${conn.client_ip}' } },
      { count: '${size(vars.sample_list)}' },
    ] } }] },
    { expressions: ['vars.sample_bool == true', "vars.ip_list[1] == 'GET'", 'vars.count == 3', "vars.nested.ip == conn.client_ip"], actions: [{ type: 'custom-response', config: {
      status_code: 200, headers: { 'content-type': 'text/plain' },
      body: '${vars.sample_string} ${vars.sample_double} ${vars.sample_list[0]} ${vars.sample_map.key} ${vars.sample_nested_map.key[1]} ${vars.greeting}',
    } }] },
  ] })
  const out = await policy.onHttpRequest(makeRequest({ clientIp: '192.0.2.4' }), createPolicyState())
  assert.equal(out.kind, 'respond')
  if (out.kind !== 'respond') return
  assert.equal((await readAll(out.response.body)).toString(), 'bar 1.5 1 value value2 Your IP is 192.0.2.4!')
  await policy.close()
})

test('custom-response takes ngrok\'s earlier `content` field and infers the content type', async () => {
  for (const [body, type] of [['{"ok":true}', 'application/json'], ['<h1>hi</h1>', 'text/html; charset=utf-8'], ['plain', 'text/plain; charset=utf-8']]) {
    const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'custom-response', config: { content: body } }] }] })
    const out = await policy.onHttpRequest(makeRequest(), createPolicyState())
    assert.equal(out.kind === 'respond' && header(out.response.rawHeaders, 'content-type'), type)
  }
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'custom-response', config: { content: 'a', body: 'b' } }] }] }), /config\.content: is the earlier name of body/)
})

test('add-headers host: req.host changes, and a Location naming the new host is rewritten back to the public one', async () => {
  const policy = compilePolicy({ on_http_request: [
    { actions: [{ type: 'add-headers', config: { headers: { host: 'internal.local:8080' } } }] },
    { expressions: ["req.host == 'internal.local:8080'"], actions: [{ type: 'add-headers', config: { headers: { 'x-seen': 'yes' } } }] },
  ] })
  const state = createPolicyState()
  const req = makeRequest({ host: 'demo.gw.test', scheme: 'https', rawHeaders: ['Host', 'demo.gw.test'] })
  await policy.onHttpRequest(req, state)
  assert.deepEqual(req.rawHeaders.slice(0, 2), ['Host', 'internal.local:8080'])
  assert.equal(header(req.rawHeaders, 'x-seen'), 'yes')
  const res = await policy.onHttpResponse(req, makeResponse(302, { Location: 'http://internal.local:8080/login?next=%2F' }), state)
  assert.equal(header(res.rawHeaders, 'location'), 'https://demo.gw.test/login?next=%2F')
  const other = await policy.onHttpResponse(req, makeResponse(302, { Location: 'https://idp.example/auth' }), state)
  assert.equal(header(other.rawHeaders, 'location'), 'https://idp.example/auth')
  await policy.close()
})
