/**
 * CEL as ngrok documents it (traffic-policy/variables/*.mdx, traffic-policy/macros):
 * `req.url` is a string with its parts beside it, `req.user_agent.*` parsed,
 * `req.cookies[k][i].value`, `conn.ts.start`, `req.ts.header_received`, `time.now` as an
 * RFC 3339 string, `rand.*`, and `matches()` with RE2 semantics. The ngrok-docs examples
 * these made loadable run through a real relay, the real agent and a real upstream.
 */
import { describe, it, before, after, test } from 'node:test'
import assert from 'node:assert/strict'
import { compilePolicy, createPolicyState, PolicyError } from '@gw/cli/policy/index'
import { makeRequest } from './helpers.js'
import { expectations, fixture, fixturePolicy } from './ngrok-docs.js'
import { startEchoUpstream, startPolicyTunnel, type PolicyTunnel } from './tunnel-stack.js'

const UA = {
  edge: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91',
  chrome: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36',
  safariMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_6) AppleWebKit/603.3.8 (KHTML, like Gecko) Version/10.1.2 Safari/603.3.8',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
  ipad: 'Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
  gptbot: 'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.0; +https://openai.com/gptbot',
  chatgptUser: 'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot',
  googlebot: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
}

/** Does the expression match this request? (a rule that denies when it does) */
async function matches(expression: string, init: Parameters<typeof makeRequest>[0] = {}, now?: () => number): Promise<boolean> {
  const policy = compilePolicy({ on_http_request: [{ expressions: [expression], actions: [{ type: 'deny', config: { status_code: 403 } }] }] }, now ? { now } : {})
  try {
    return (await policy.onHttpRequest(makeRequest(init), createPolicyState())).kind === 'respond'
  } finally {
    await policy.close()
  }
}

/** The text `${template}` interpolates to, through a custom-response body. */
async function interpolate(template: string, init: Parameters<typeof makeRequest>[0] = {}, now?: () => number): Promise<string> {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'custom-response', config: { status_code: 200, body: template } }] }] }, now ? { now } : {})
  try {
    const out = await policy.onHttpRequest(makeRequest(init), createPolicyState())
    assert.equal(out.kind, 'respond')
    if (out.kind !== 'respond') return ''
    const chunks: Buffer[] = []
    for await (const c of out.response.body) chunks.push(Buffer.from(c as Buffer))
    return Buffer.concat(chunks).toString('utf8')
  } finally {
    await policy.close()
  }
}

function loadError(expression: string): PolicyError {
  try {
    compilePolicy({ on_http_request: [{ expressions: [expression], actions: [{ type: 'deny' }] }] })
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err))
    return err
  }
  assert.fail(`${expression} loaded`)
}

test('req.url is the URL string, with its parts beside it', async () => {
  const init = { target: '/api/v1?x=1', host: 'demo.gw.test', scheme: 'https' as const }
  assert.equal(await matches("req.url == 'https://demo.gw.test/api/v1?x=1'", init), true)
  assert.equal(await matches("req.url.contains('/api/')", init), true)
  assert.equal(await matches("req.url.startsWith('https://demo.')", init), true)
  assert.equal(await matches("req.url.contains('/nope')", init), false)
  assert.equal(await matches("req.url.path == '/api/v1' && req.url.uri == '/api/v1?x=1' && req.url.host == 'demo.gw.test'", init), true)
  assert.equal(await matches("size(req.url) == 31 && req.url + '#' == 'https://demo.gw.test/api/v1?x=1#'", init), true)
  assert.equal(await matches("req.url in ['https://demo.gw.test/api/v1?x=1']", init), true)
  assert.equal(await interpolate('${req.url} ${req.url.path}', init), 'https://demo.gw.test/api/v1?x=1 /api/v1')
  // A misspelt part is still an unknown field, with the parts listed.
  const err = loadError("req.url.pth == '/'")
  assert.match(err.message, /No such key: pth \(at character 9\)/)
  assert.ok(err.allowed?.includes('path') && err.allowed.includes('uri'), String(err.allowed))
})

test('req.user_agent is the header, and its parts parsed as ngrok names them', async () => {
  const ua = (header: string) => ({ headers: { 'user-agent': header } })
  assert.equal(await matches("req.user_agent.name == 'Edge' && req.user_agent.os == 'Windows' && req.user_agent.is_desktop", ua(UA.edge)), true)
  assert.equal(await matches("req.user_agent.name == 'Safari' && req.user_agent.version == '10.1.2'", ua(UA.safariMac)), true)
  // ngrok's own examples: os 'macOS', os_version '10.12.6'.
  assert.equal(await matches("req.user_agent.os == 'macOS' && req.user_agent.os_version == '10.12.6'", ua(UA.safariMac)), true)
  assert.equal(await matches('req.user_agent.is_mobile && !req.user_agent.is_tablet && !req.user_agent.is_desktop', ua(UA.iphone)), true)
  assert.equal(await matches("req.user_agent.is_tablet && req.user_agent.device == 'iPad'", ua(UA.ipad)), true)
  assert.equal(await matches('req.user_agent.is_bot', ua(UA.chrome)), false)
  for (const [header, name] of [[UA.gptbot, 'GPTBot'], [UA.chatgptUser, 'ChatGPT-User'], [UA.googlebot, 'Googlebot']] as const) {
    assert.equal(await matches(`req.user_agent.is_bot && req.user_agent.name == '${name}' && !req.user_agent.is_desktop`, ua(header)), true, header)
  }
  assert.equal(await matches("req.user_agent.url == 'https://openai.com/gptbot' && req.user_agent.url.contains('https')", ua(UA.gptbot)), true)
  assert.equal(await matches("req.user_agent.contains('Mozilla')", ua(UA.chrome)), true)
  assert.equal(await matches("req.user_agent == 'curl/8.5.0' && req.user_agent.name == 'curl' && req.user_agent.version == '8.5.0'", ua('curl/8.5.0')), true)
  assert.equal(await interpolate('${req.user_agent}|${req.user_agent.name}', ua(UA.gptbot)), `${UA.gptbot}|GPTBot`)
  // No header: empty strings and false, not an error.
  assert.equal(await matches("req.user_agent == '' && req.user_agent.name == '' && !req.user_agent.is_bot"), true)
})

test('req.cookies[k][i].name/.value; getReqCookie returns the cookie and reads as its value', async () => {
  const init = { headers: { cookie: 'ab_test=A; session=premium-1; ab_test=B' } }
  assert.equal(await matches("'ab_test' in req.cookies && req.cookies['ab_test'][0].value == 'A' && req.cookies['ab_test'][1].value == 'B'", init), true)
  assert.equal(await matches("req.cookies['session'][0].name == 'session' && req.cookies['session'][0].value.contains('premium')", init), true)
  assert.equal(await matches("getReqCookie('session').value == 'premium-1' && getReqCookie('session') == 'premium-1'", init), true)
  assert.equal(await matches("hasReqCookie('session') && !hasReqCookie('none') && getReqCookie('none') == ''", init), true)
})

test('req.content_type is the media type; .raw the header and .parameters its parameters', async () => {
  const init = { headers: { 'content-type': 'Application/JSON; charset="utf-8"' } }
  assert.equal(await matches("req.content_type == 'application/json'", init), true)
  assert.equal(await matches("req.content_type.raw == 'Application/JSON; charset=\"utf-8\"' && req.content_type.parameters['charset'] == 'utf-8'", init), true)
  assert.equal(await matches("req.content_encoding == ['gzip', 'br']", { headers: { 'content-encoding': 'gzip, br' } }), true)
})

test('time.now is an RFC 3339 string; timestamp(time.now), conn.ts.start and req.ts.header_received are timestamps', async () => {
  const now = Date.parse('2026-03-04T05:06:07.890Z')
  const clock = () => now
  const received = Date.parse('2026-03-04T05:06:07.000Z')
  assert.equal(await interpolate('${time.now}', {}, clock), '2026-03-04T05:06:07Z')
  assert.equal(await matches("time.now == '2026-03-04T05:06:07Z' && timestamp(time.now).getHours() == 5", {}, clock), true)
  assert.equal(await matches('conn.ts.start <= timestamp(time.now) && req.ts.header_received == conn.ts.start', { receivedAt: received }, clock), true)
  assert.equal(await matches("conn.ts.start == timestamp('2026-03-04T05:00:00Z')", { receivedAt: received, connectedAt: Date.parse('2026-03-04T05:00:00Z') }, clock), true)
  assert.equal(await interpolate('${conn.ts.start}', { receivedAt: received }, clock), '2026-03-04T05:06:07.000Z')
  // gw's old `time.now.getHours()` fails at load with the way to write it now.
  assert.match(loadError('time.now.getHours() > 1').message, /time\.now is an RFC 3339 string, as in ngrok: use timestamp\(time\.now\)/)
})

test('rand.double() is in [0, 1) and rand.int(min, max) in [min, max]; rand.int() is 0 or 1', async () => {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'set-vars', config: { vars: [
    { d: '${rand.double()}' }, { i: '${rand.int(3, 5)}' }, { b: '${rand.int()}' },
  ] } }, { type: 'custom-response', config: { body: '${vars.d} ${vars.i} ${vars.b}' } }] }] })
  const seen = { i: new Set<number>(), b: new Set<number>() }
  for (let n = 0; n < 200; n++) {
    const out = await policy.onHttpRequest(makeRequest(), createPolicyState())
    assert.equal(out.kind, 'respond')
    if (out.kind !== 'respond') return
    const chunks: Buffer[] = []
    for await (const c of out.response.body) chunks.push(Buffer.from(c as Buffer))
    const [d, i, b] = Buffer.concat(chunks).toString('utf8').split(' ').map(Number) as [number, number, number]
    assert.ok(d >= 0 && d < 1, String(d))
    seen.i.add(i)
    seen.b.add(b)
  }
  assert.deepEqual([...seen.i].sort(), [3, 4, 5])
  assert.deepEqual([...seen.b].sort(), [0, 1])
  await policy.close()
  assert.equal(await matches('rand.double() < 1.0 && rand.int(7, 7) == 7'), true)
})

test('matches() is RE2: (?i) works, lookarounds and backreferences are refused at load', async () => {
  assert.equal(await matches("req.url.path.matches('(?i)^/ADMIN')", { target: '/admin/x' }), true)
  assert.equal(await matches("matches(req.url.path, '^/a.*n$')", { target: '/admin' }), true)
  assert.equal(await matches("req.user_agent.matches('(?i).*(chatgpt-user|gptbot)/\\\\d+.*')", { headers: { 'user-agent': UA.gptbot } }), true)
  // JavaScript's RegExp accepts these; RE2 does not, and neither does ngrok.
  assert.match(loadError("req.url.path.matches('^/(?=admin)')").message, /matches\(\): error parsing regexp: .*\(\?=.*patterns are RE2 syntax/)
  assert.match(loadError("req.url.path.matches('(a)\\\\1')").message, /matches\(\): error parsing regexp/)
  // A pattern built at run time is RE2 too: an invalid one fails that rule, not the process.
  assert.equal(await matches("req.url.path.matches(req.headers['x-p'][0])", { headers: { 'x-p': '(?=x)' } }), false)
})

test('a pattern that backtracks catastrophically under RegExp finishes under RE2', { timeout: 20_000 }, async () => {
  // `^(a+)+$` on 40 a's and a '!' takes ~2^40 steps in a backtracking engine.
  const evil = `${'a'.repeat(40)}!`
  assert.equal(await matches("req.headers['x-v'][0].matches('^(a+)+$')", { headers: { 'x-v': evil } }), false)
  assert.equal(await matches("req.headers['x-v'][0].matches('^(a+)+$')", { headers: { 'x-v': 'a'.repeat(40) } }), true)
})

test('the CEL macros ngrok lists: has, all, exists, exists_one, map, filter', async () => {
  const init = { target: '/?tag=a&tag=b&tag=c' }
  assert.equal(await matches("has(req.url.query_params.tag) && !has(req.url.query_params.none)", init), true)
  assert.equal(await matches("req.url.query_params['tag'].all(t, size(t) == 1)", init), true)
  assert.equal(await matches("req.url.query_params['tag'].exists(t, t == 'b') && req.url.query_params['tag'].exists_one(t, t == 'c')", init), true)
  assert.equal(await matches("req.url.query_params['tag'].map(t, t + t) == ['aa', 'bb', 'cc']", init), true)
  assert.equal(await matches("req.url.query_params['tag'].filter(t, t != 'b') == ['a', 'c']", init), true)
})

describe('ngrok-docs examples that the CEL variables made loadable, through the real agent', () => {
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>
  before(async () => {
    upstream = await startEchoUpstream('docs')
  })
  after(async () => {
    await upstream.close()
  })

  async function withFixture(id: string, run: (t: PolicyTunnel) => Promise<void>): Promise<void> {
    assert.equal(expectations[id]?.status, undefined, `${id} is accepted in expectations.json`)
    const tunnel = await startPolicyTunnel(compilePolicy(fixturePolicy(fixture(id))), upstream.url)
    try {
      await run(tunnel)
    } finally {
      await tunnel.close()
    }
  }

  const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/
  function recent(ts: string): void {
    assert.match(ts, rfc3339)
    const ms = Date.parse(ts)
    assert.ok(ms <= Date.now() + 1000 && ms > Date.now() - 60_000, ts)
  }

  it('add-headers: "started at ${conn.ts.start}" on the response', () => withFixture('traffic-policy-actions-add-headers-6247be', async (t) => {
    const r = await t.fetch('/status/200')
    assert.equal(r.status, 200)
    assert.equal(r.headers['x-custom-header'], 'my-custom-value')
    const v = String(r.headers['x-string-interpolation-example'])
    assert.match(v, /^started at /)
    recent(v.slice('started at '.length))
    assert.equal((await t.fetch('/other')).headers['x-custom-header'], undefined)
  }))

  it('custom-response: the connection start and timestamp(time.now) in the body', () => withFixture('traffic-policy-actions-custom-response-498c30', async (t) => {
    const r = await t.fetch('/api/example')
    assert.equal(r.status, 418)
    const m = /^connection began at (\S+), now (\S+)$/.exec(r.text)
    assert.ok(m, r.text)
    recent(m[1]!)
    recent(m[2]!)
    assert.ok(Date.parse(m[1]!) <= Date.parse(m[2]!) + 1000)
  }))

  it('custom-response: {"connection-start": "${conn.ts.start}"} as JSON', () => withFixture('traffic-policy-actions-custom-response-eb7d8f', async (t) => {
    const r = await t.fetch('/api/example')
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'application/json')
    recent((JSON.parse(r.text) as Record<string, string>)['connection-start']!)
  }))

  it('block-unwanted-requests: named AI bots get 404, browsers reach the upstream', () => withFixture('traffic-policy-examples-block-unwanted-requests-0f4c65', async (t) => {
    for (const ua of [UA.gptbot, UA.chatgptUser]) assert.equal((await t.fetch('/', { headers: { 'user-agent': ua } })).status, 404, ua)
    const ok = await t.fetch('/', { headers: { 'user-agent': UA.chrome } })
    assert.equal(ok.status, 200)
    assert.equal(JSON.parse(ok.text).tag, 'docs')
    assert.equal((await t.fetch('/', { headers: { 'user-agent': UA.googlebot } })).status, 200)
  }))

  for (const id of ['traffic-policy-examples-block-unwanted-requests-89f7d9', 'traffic-policy-examples-block-unwanted-requests-980583']) {
    it(`block-unwanted-requests: req.url.contains('/robots.txt') answers robots.txt (${id})`, () => withFixture(id, async (t) => {
      const r = await t.fetch('/robots.txt')
      assert.equal(r.status, 200)
      assert.equal(r.headers['content-type'], 'text/plain')
      assert.match(r.text, /^User-agent: ChatGPT-User(\r\n|\\r\\n)Disallow: \/$/)
      assert.equal(JSON.parse((await t.fetch('/index.html')).text).tag, 'docs')
    }))
  }

  it('rate-limit-requests: 30 a minute on req.url.contains(\'/api/specific_endpoint\')', () => withFixture('traffic-policy-examples-rate-limit-requests-51bd16', async (t) => {
    for (let i = 0; i < 30; i++) assert.equal((await t.fetch('/api/specific_endpoint')).status, 200, `request ${i + 1}`)
    const over = await t.fetch('/api/specific_endpoint')
    assert.equal(over.status, 429)
    assert.ok(over.headers['retry-after'])
    assert.equal((await t.fetch('/api/other')).status, 200)
  }))

  it('user-agent-filtering: req.user_agent.is_bot gets 403', () => withFixture('traffic-policy-examples-user-agent-filtering-9ffbab', async (t) => {
    assert.equal((await t.fetch('/', { headers: { 'user-agent': UA.googlebot } })).status, 403)
    assert.equal((await t.fetch('/', { headers: { 'user-agent': 'curl/8.5.0' } })).status, 403)
    assert.equal((await t.fetch('/', { headers: { 'user-agent': UA.iphone } })).status, 200)
  }))

  it('url-rewrite: from "${req.url.authority}/products/?([.*]+)?" is interpolated, then matched as RE2', () => withFixture('traffic-policy-actions-url-rewrite-6cf0fe', async (t) => {
    // The docs' request: /products/123 reaches the upstream as /products.php?query=123 (the
    // `[.*]+` class takes no digits, so "123" is the text after the match, kept).
    assert.equal(JSON.parse((await t.fetch('/products/123')).text).url, '/products.php?query=123')
    assert.equal(JSON.parse((await t.fetch('/products')).text).url, '/products.php?query=')
    assert.equal(JSON.parse((await t.fetch('/other/products/x')).text).url, '/other/products/x', 'the authority must precede /products')
  }))

  it("user-agent-filtering: req.user_agent.name == 'Edge' gets its greeting", () => withFixture('traffic-policy-examples-user-agent-filtering-f4316c', async (t) => {
    const edge = await t.fetch('/', { headers: { 'user-agent': UA.edge } })
    assert.equal(edge.status, 200)
    assert.equal(edge.text, 'Hello Edge User!')
    assert.equal(JSON.parse((await t.fetch('/', { headers: { 'user-agent': UA.chrome } })).text).tag, 'docs')
  }))
})
