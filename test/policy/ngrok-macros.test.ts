/**
 * ngrok's macro families (traffic-policy/macros/index.mdx): each example on that page,
 * with the answer the page gives, is evaluated by gw's CEL; then the macros in rules and
 * interpolation through the real relay, agent and upstream. Also rate-limit's
 * `enforce: false`, ngrok's dry run.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compilePolicy, createPolicyState } from '@gw/cli/policy/index'
import { makeRequest, readAll } from './helpers.js'
import { startEchoUpstream, startPolicyTunnel } from './tunnel-stack.js'

/** The value an interpolation gives, through a custom-response body. */
async function value(expression: string): Promise<string> {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'custom-response', config: { status_code: 200, body: `\${${expression}}` } }] }] })
  try {
    const out = await policy.onHttpRequest(makeRequest({ target: '/a/b?x=1' }), createPolicyState())
    assert.equal(out.kind, 'respond')
    return (await readAll((out as { response: { body: NodeJS.ReadableStream } }).response.body as never)).toString()
  } finally {
    await policy.close()
  }
}

/** Does the expression hold (as a rule's)? An expression that fails does not. */
async function holds(expression: string): Promise<boolean> {
  const policy = compilePolicy({ on_http_request: [{ expressions: [expression], actions: [{ type: 'deny' }] }] })
  try {
    return (await policy.onHttpRequest(makeRequest({ target: '/a/b?x=1' }), createPolicyState())).kind === 'respond'
  } finally {
    await policy.close()
  }
}

// [expression, the answer on ngrok's page] — strings as the page prints them; lists and maps as JSON.
const EXAMPLES: Array<[string, string]> = [
  ["base64.encode(b'hello')", 'aGVsbG8='],
  ["basic_auth.encode('username', 'password1')", 'Basic dXNlcm5hbWU6cGFzc3dvcmQx'],
  ["hash.crc32('hello')", '3610a686'], ["hash.crc32('hello', 'hex')", '3610a686'], ["hash.crc32('hello', 'base64')", 'NhCmhg=='],
  ["hash.crc64('hello')", '3c3eeee2d8100000'], ["hash.crc64('hello', 'base64')", 'PD7u4tgQAAA='],
  ["hash.md5('hello')", '5d41402abc4b2a76b9719d911017c592'], ["hash.md5('hello', 'base64')", 'XUFAKrxLKna5cZ2REBfFkg=='],
  ["hash.sha1('hello')", 'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d'], ["hash.sha1('hello', 'base64')", 'qvTGHdzF6KLavt4PO0gs2a6pQ00='],
  ["hash.sha256('hello')", '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'],
  ["hash.sha256('hello', 'base64')", 'LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ='],
  ["hash.sha512('hello', 'base64')", 'm3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw=='],
  ["hash.xxhash64('hello')", '26c7827d889f6da3'], ["hash.xxhash64('hello', 'base64')", 'JseCfYifbaM='],
  ["'hello'.md5()", '5d41402abc4b2a76b9719d911017c592'], ["'hello'.sha256('base64')", 'LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ='],
  ["'hello'.crc64()", '3c3eeee2d8100000'], ["'hello'.xxhash64()", '26c7827d889f6da3'],
  ["json.encode({'a': 'b'})", '{"a":"b"}'], ["json.encode(['a', 'b', 'c'])", '["a","b","c"]'],
  ["['a', 'b', 'c'].encodeJson()", '["a","b","c"]'], ["{'a': 'b', 'c': 'd'}.encodeJson()", '{"a":"b","c":"d"}'],
  ["{'a': 'b', 'c': 'd'}.encodeQueryString()", 'a=b&c=d'], ["queryString.encode({'a': 'b', 'c': 'd'})", 'a=b&c=d'],
  ["[1, 2, 3, 4].slice(1, 3)", '[2,3]'], ["[1, 2, 3, 4].slice(2, 4)", '[3,4]'],
  ["[1, [2, 3], [4]].flatten()", '[1,2,3,4]'], ["[1, [2, [3, 4]]].flatten()", '[1,2,[3,4]]'], ["[1, 2, [], [], [3, 4]].flatten()", '[1,2,3,4]'],
  ["[1, [2, [3, [4]]]].flatten(2)", '[1,2,3,[4]]'],
  ["[3, 2, 1].sort()", '[1,2,3]'], ["['b', 'c', 'a'].sort()", '["a","b","c"]'],
  // The page's sortBy example with maps for its Player messages (gw has no proto types).
  ["[{'name': 'foo', 'score': 0}, {'name': 'bar', 'score': -10}, {'name': 'baz', 'score': 1000}].sortBy(e, e.score).map(e, e.name)", '["bar","foo","baz"]'],
  ["lists.range(5)", '[0,1,2,3,4]'], ["lists.range(0)", '[]'],
  ["[1, 2, 2, 3, 3, 3].distinct()", '[1,2,3]'], ["['b', 'b', 'c', 'a', 'c'].distinct()", '["b","c","a"]'], ["[1, 'b', 2, 'b'].distinct()", '[1,"b",2]'],
  ["'hello'.charAt(4)", 'o'], ["'hello'.charAt(5)", ''],
  ["'hello %s'.format(['world'])", 'hello world'], ["'integer: %d'.format([42])", 'integer: 42'], ["'%f'.format([3.14])", '3.140000'],
  ["'%x'.format([26])", '1a'], ["'binary: %b'.format([5])", 'binary: 101'], ["'bool: %b'.format([true])", 'bool: 1'],
  ["'hello mellow'.replace('l', 'L')", 'heLLo meLLow'], ["'hello mellow'.replace('l', 'L', 2)", 'heLLo mellow'],
  ["'hello mellow'.replace('x', 'X')", 'hello mellow'],
  ["'c29tZTp0aGluZw=='.decodeBase64()", 'some:thing'],
  ["'gums'.reverse()", 'smug'], ["'John Smith'.reverse()", 'htimS nhoJ'],
  ["'Ärger in Österreich, ÉCOLE, ЙОГА!'.lower()", 'ärger in österreich, école, йога!'],
  ["strings.quote('single-quote with \"double quote\"')", '"single-quote with \\"double quote\\""'],
  ["url.escape('i;md/r/$y')", 'i%3Bmd%2Fr%2F%24y'], ["url.unescape('i%3Bmd%2Fr%2F%24y')", 'i;md/r/$y'],
  ["url.parse('https://ngrok.com').host", 'ngrok.com'], ["url.parse('https://ngrok.com').scheme", 'https'],
]

const TRUE: string[] = [
  "base64.decode('aGVsbG8=') == b'hello'",
  "json.decode('{\"a\":\"b\"}').a == 'b'", "json.decode('[\"a\",\"b\",\"c\"]')[2] == 'c'", "'{\"a\":\"b\"}'.decodeJson().a == 'b'",
  "queryString.decode('a=b&c=d').c == ['d']", "'a=b&c=d'.decodeQueryString().a[0] == 'b'",
  "'{\"a\":\"b\",\"c\":\"d\"}'.isJson()", "!'not json'.isJson()", "'a=b&c=d'.isQueryString()", "!'not a query string'.isQueryString()",
  "'https://ngrok.com'.isURL()", "!'not a url'.isURL()",
  "url.unescape('%2Ffoo') == '/foo'",
  // sortBy: stable, keys of every comparable kind, over request data, in a rule.
  "[{'k': 1, 'v': 'a'}, {'k': 0, 'v': 'b'}, {'k': 1, 'v': 'c'}].sortBy(x, x.k).map(x, x.v) == ['b', 'a', 'c']",
  "['bb', 'a', 'ccc'].sortBy(s, size(s)) == ['a', 'bb', 'ccc']", "['x', 'y'].sortBy(s, s == 'x') == ['y', 'x']",
  "[timestamp('2024-01-02T00:00:00Z'), timestamp('2023-01-01T00:00:00Z')].sortBy(t, t)[0] == timestamp('2023-01-01T00:00:00Z')",
  "[duration('2s'), duration('1500ms')].sortBy(d, d)[0] == duration('1500ms')", "[b'b', b'a'].sortBy(b, b)[0] == b'a'",
  "req.url.path.split('/').sortBy(p, p).size() == 3", "lists.range(3).map(i, i * 2) == [0, 2, 4]",
  "lists.range(4).sortBy(i, -i) == [3, 2, 1, 0]", "url.parse(req.url).path == '/a/b'", "req.url.parseUrl().raw_query == 'x=1'",
]

const ERRORS: string[] = [
  "base64.decode('aGVsbG8') == b'hello'", "[1, [2, [3, [4]]]].flatten(-1) == []", "[1, 'b'].sort() == []", "[[1, 2, 3]].sort() == []",
  "[1, 'b'].sortBy(x, x) == []", "[{'a': 1}].sortBy(x, x) == []", "[{'k': 1}, {'k': 'a'}].sortBy(x, x.k) == []",
  "lists.range(-1) == []", "lists.range(100001).size() > 0",
  "'hello'.charAt(-1) == ''", "hash.md5('x', 'base32') == ''", "json.decode('{') == {}",
]

test('ngrok\'s macros page: every example of hash, base64, json, url, queryString, basic_auth, strings and the list/string helpers gives the page\'s answer', async () => {
  for (const [expression, expected] of EXAMPLES) {
    const got = await value(expression)
    assert.equal(got, expected, expression)
  }
  for (const e of TRUE) assert.equal(await holds(e), true, e)
  // The page's "error" examples: an expression that fails does not match (and is not a crash).
  for (const e of ERRORS) assert.equal(await holds(e), false, e)
})

test('macros in rules and interpolation through the real tunnel; rate-limit enforce: false records limited without refusing', async () => {
  const upstream = await startEchoUpstream()
  const tunnel = await startPolicyTunnel(compilePolicy({
    on_http_request: [
      { actions: [{ type: 'rate-limit', config: { name: 'dry', capacity: 1, rate: '60s', enforce: false } }] },
      // ngrok's restrict-ips dry run (traffic-policy/actions/restrict-ips.mdx), with a CIDR for its hosted IP policy.
      { actions: [{ type: 'restrict-ips', config: { enforce: false, deny: ['10.0.0.0/8', '127.0.0.0/8'] } }] },
      { expressions: ["json.decode(req.headers['x-claims'][0]).role == 'banned'"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
      { actions: [{ type: 'add-headers', config: { headers: {
        'x-user-hash': "${hash.sha256(json.decode(req.headers['x-claims'][0]).sub)}",
        'x-path': '${url.parse(req.url).path}',
        'x-auth': "${basic_auth.encode('u', 'p')}",
        'x-limited': '${actions.ngrok.rate_limit.limited}',
        'x-ip-action': '${actions.ngrok.restrict_ips.action}',
        'x-ip-cidr': '${actions.ngrok.restrict_ips.matched_cidr}',
      } } }] },
    ],
  }), upstream.url)
  try {
    const first = JSON.parse((await tunnel.fetch('/x/y?z=1', { headers: { 'x-claims': '{"sub":"alice","role":"user"}' } })).text) as { headers: Record<string, string> }
    assert.equal(first.headers['x-user-hash'], '2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90')
    assert.equal(first.headers['x-path'], '/x/y')
    assert.equal(first.headers['x-auth'], 'Basic dTpw')
    assert.equal(first.headers['x-limited'], 'false')
    assert.equal(first.headers['x-ip-action'], 'deny', 'enforce: false records the decision and lets the request through')
    assert.equal(first.headers['x-ip-cidr'], '127.0.0.0/8')
    // Over the capacity of 1, enforce: false lets the request through and says it was limited.
    const second = await tunnel.fetch('/x', { headers: { 'x-claims': '{"sub":"bob"}' } })
    assert.equal(second.status, 200)
    assert.equal((JSON.parse(second.text) as { headers: Record<string, string> }).headers['x-limited'], 'true')
    assert.equal((await tunnel.fetch('/', { headers: { 'x-claims': '{"sub":"eve","role":"banned"}' } })).status, 403)
  } finally {
    await tunnel.close()
    await upstream.close()
  }
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: { capacity: 1, rate: '1s', enforce: false, mode: 'delay' } }] }] }),
    /config\.mode: delay holds requests back, which enforce: false never does/)
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'restrict-ips', config: { ip_policies: ['ipp_1'] } }] }] }),
    /config\.ip_policies: names IP policies kept in ngrok's cloud \(ipp_…\), which gw cannot read; list their CIDRs under allow and deny instead/)
})
