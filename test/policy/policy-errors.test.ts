/**
 * Every kind of policy error: each must name where (file:line:col and the document
 * path), what was wrong and, where there is a fixed set, the allowed values.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ACTIONS, compilePolicy, loadPolicyFile, PolicyError } from '@gw/cli/policy/index'

const dir = mkdtempSync(join(tmpdir(), 'gw-policy-errors-'))
let n = 0
function fileWith(text: string, ext = 'yml'): string {
  const file = join(dir, `p${++n}.${ext}`)
  writeFileSync(file, text)
  return file
}

function errorOf(fn: () => unknown): PolicyError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected a PolicyError, got ${String(err)}`)
    return err
  }
  assert.fail('expected the policy to be rejected')
}

function inFile(yaml: string): PolicyError {
  const file = fileWith(yaml)
  const err = errorOf(() => loadPolicyFile(file))
  assert.equal(err.location?.file, file)
  return err
}

const action = (type: string, config: unknown) => ({ on_http_request: [{ actions: [{ type, config }] }] })

test('file errors: unreadable file, YAML syntax with line and column, duplicate keys', () => {
  let err = errorOf(() => loadPolicyFile(join(dir, 'missing.yml')))
  assert.equal(err.code, 'GW_ERR_POLICY_FILE')
  assert.match(err.message, /missing\.yml: \(document\): cannot read the policy file: no such file/)

  err = inFile('on_http_request:\n  - actions: [\n')
  assert.equal(err.code, 'GW_ERR_POLICY_FILE')
  assert.match(err.message, /p\d+\.yml:3:1: \(document\): not valid YAML or JSON/)

  err = inFile('on_http_request: []\non_http_request: []\n')
  assert.match(err.message, /:2:1: .*not valid YAML or JSON: Map keys must be unique/)

  const json = fileWith('{"on_http_request": [{"actions": [{"type": "deny", "config": {"status_code": "x"}}]}]}', 'json')
  err = errorOf(() => loadPolicyFile(json))
  assert.match(err.message, /p\d+\.json:1:78: on_http_request\[0\]\.actions\[0\]\.config\.status_code: must be an integer from 400 to 599, got "x"/)
})

test('document shape: unknown keys, phases, rules and actions', () => {
  let err = inFile('on_http_requests: []\n')
  assert.match(err.message, /:1:19: on_http_requests: is not a known field; allowed values: inbound, on_event_stream_message, on_http_request, on_http_response, on_tcp_connect, outbound, upstreams/)

  // loadPolicyFile compiles for an http endpoint unless told otherwise: there on_tcp_connect
  // takes only terminate-tls (the relay runs it); its other actions run on tcp and tls endpoints.
  err = inFile('on_tcp_connect:\n  - actions: [{type: deny}]\n')
  assert.match(err.message, /:2:22: on_tcp_connect\[0\]\.actions\[0\]\.type: deny is not supported in on_tcp_connect on an http endpoint: its connections end at the relay, which runs only terminate-tls there; other on_tcp_connect actions run on tcp and tls endpoints \(gw tcp, gw tls\), and restrict-ips works in on_http_request; allowed values: terminate-tls/)

  err = inFile('on_http_request: {}\n')
  assert.match(err.message, /:1:18: on_http_request: must be a list, got an object/)

  err = inFile('on_http_request:\n  - name: x\n')
  assert.match(err.message, /:2:5: on_http_request\[0\]\.actions: is required and must be a list/)

  err = inFile('on_http_request:\n  - actions: []\n')
  assert.match(err.message, /:2:14: on_http_request\[0\]\.actions: must have at least 1 item/)

  err = inFile('on_http_request:\n  - "deny"\n')
  assert.match(err.message, /:2:5: on_http_request\[0\]: must be a rule \(\{name\?, expressions\?, actions\}\), got "deny"/)

  err = inFile('on_http_request:\n  - actions:\n      - type: deny\n    expresions: ["true"]\n')
  assert.match(err.message, /:4:17: on_http_request\[0\]\.expresions: is not a known field; allowed values: actions, expressions, name/)

  err = inFile('on_http_request:\n  - actions:\n      - type: denny\n')
  // Every action gw has, sorted (ACTIONS is the registry the message is made from).
  assert.ok(err.message.includes(':3:15: on_http_request[0].actions[0].type: is not a known action: "denny"; allowed values: ' +
    'add-headers, api-key, basic-auth, circuit-breaker, close-connection, compress-response, custom-response, deny, forward, '), err.message)
  assert.ok(err.message.endsWith(`; allowed values: ${[...ACTIONS.keys()].sort().join(', ')}`), err.message)

  err = inFile('on_http_request:\n  - actions:\n      - config: {}\n')
  assert.match(err.message, /on_http_request\[0\]\.actions\[0\]\.type: is required; allowed values: add-headers/)

  err = inFile('on_http_response:\n  - actions:\n      - type: rate-limit\n        config: {capacity: 1, rate: 1s}\n')
  assert.match(err.message, /:3:15: on_http_response\[0\]\.actions\[0\]\.type: rate-limit cannot run in on_http_response; allowed values: on_http_request/)

  err = inFile('on_http_request:\n  - actions:\n      - type: deny\n        confg: {}\n')
  assert.match(err.message, /:4:16: on_http_request\[0\]\.actions\[0\]\.confg: is not a known field; allowed values: config, type/)
})

test('expressions: syntax, unknown variables and fields, non-boolean rules, interpolation', () => {
  let err = inFile(`on_http_request:\n  - expressions: ["req.method == "]\n    actions: [{type: deny}]\n`)
  assert.match(err.message, /:2:19: on_http_request\[0\]\.expressions\[0\]: invalid CEL expression "req\.method == ": Unexpected token: EOF \(at character 15\)/)

  err = inFile(`on_http_request:\n  - expressions:\n      - "req.path == '/x'"\n    actions: [{type: deny}]\n`)
  assert.match(err.message, /:3:9: on_http_request\[0\]\.expressions\[0\]: invalid CEL expression .*No such key: path/)
  assert.deepEqual(err.allowed, ['method', 'host', 'version', 'url', 'headers', 'cookies', 'content_type', 'content_encoding', 'content_length', 'user_agent', 'ts'])

  err = inFile(`on_http_request:\n  - expressions: ["request.method == 'GET'"]\n    actions: [{type: deny}]\n`)
  assert.match(err.message, /invalid CEL expression .*Unknown variable: request/)
  assert.match(err.message, /; allowed values: req, conn, res, time, endpoint, rand, secrets, actions, vars, hash, base64, json, url, queryString, basic_auth, strings, lists$/)

  err = inFile(`on_http_request:\n  - expressions: ["req.url.path"]\n    actions: [{type: deny}]\n`)
  assert.match(err.message, /expressions\[0\]: invalid CEL expression "req\.url\.path": must be a boolean expression, but its type is string/)

  err = inFile(`on_http_request:\n  - expressions: ["getReqHeader(1) == []"]\n    actions: [{type: deny}]\n`)
  assert.match(err.message, /invalid CEL expression .*no matching overload/)

  err = errorOf(() => compilePolicy(action('add-headers', { headers: { 'x-ip': '${conn.client_ip' } })))
  assert.match(err.message, /on_http_request\[0\]\.actions\[0\]\.config\.headers\.x-ip: an interpolation `\$\{` is not closed with `\}`/)

  err = errorOf(() => compilePolicy(action('custom-response', { body: 'hi ${req.nope}' })))
  assert.match(err.message, /config\.body: in \$\{req\.nope\}: No such key: nope/)
})

test('action configs: types, ranges, enums, formats', () => {
  const cases: Array<[unknown, RegExp]> = [
    [action('deny', { status_code: 200 }), /config\.status_code: must be an integer from 400 to 599, got 200/],
    [action('custom-response', { status_code: 200, body: 5 }), /config\.body: must be a string, got 5/],
    [action('custom-response', { headers: { 'bad header': 'x' } }), /config\.headers: "bad header" is not a valid header name/],
    [action('redirect', { to: '/x', status_code: 305 }), /config\.status_code: must be a redirect status, got 305; allowed values: 301, 302, 303, 307, 308/],
    [action('url-rewrite', { from: '(', to: '/' }), /config\.from: is not a valid regular expression/],
    [action('restrict-ips', { allow: ['10.0.0.0/33'] }), /config\.allow\[0\]: not a valid CIDR or IP address: "10\.0\.0\.0\/33"/],
    [action('restrict-ips', {}), /on_http_request\[0\]\.actions\[0\]\.config: needs at least one of allow or deny/],
    [action('basic-auth', { credentials: ['nopassword'] }), /config\.credentials\[0\]: must be "username:password"/],
    [action('basic-auth', {}), /config\.credentials: is required and must be a list/],
    [action('rate-limit', { capacity: 5, rate: '1m', mode: 'queue' }), /config\.mode: is not a known value: "queue"; allowed values: reject, delay/],
    [action('rate-limit', { capacity: 5, rate: '1m', max_delay: '1s' }), /config\.max_delay: only applies with mode: delay/],
    [action('circuit-breaker', { error_threshold: 2 }), /config\.error_threshold: must be a number from 0 to 1, got 2/],
    [action('circuit-breaker', { window_duration: '5m' }), /config\.window_duration: must be between 1000ms and 120000ms/],
    [action('verify-webhook', { provider: 'githup', secret: 'x' }), /config\.provider: must be one of the providers gw verifies, got "githup"; allowed values: .*github/],
    [action('verify-webhook', { provider: 'sns', secret: 'x' }), /config\.provider: "sns" is one of ngrok's providers, but Amazon SNS signs with an AWS certificate/],
    [action('verify-webhook', { provider: 'github' }), /config\.secret: is required and must be a string/],
    [action('jwt-validation', { issuer: { allow_list: [] } }), /config\.issuer\.allow_list: must have at least 1 item/],
    [action('jwt-validation', { issuer: { allow_list: [{ value: 'a' }] }, audience: { allow_list: [{ value: 'b' }] }, http: { tokens: [{ type: 'jwt' }] }, jws: { allowed_algorithms: ['none'] } }),
      /config\.jws\.allowed_algorithms\[0\]: "none" is not a supported algorithm \(none is never allowed\); allowed values: RS256/],
    [action('oidc', { issuer_url: 'not a url', client_id: 'x' }), /config\.issuer_url: must be a URL/],
    [action('api-key', { keys: [{ name: 'ci', hash: 'abc' }] }), /config\.keys\[0\]\.hash: must be a SHA-256 hash/],
    [action('api-key', {}), /config: needs at least one key in keys or keys_file/],
    [action('validate-request', {}), /config: needs openapi, body_schema, query_schema or headers_schema/],
    [action('validate-request', { body_schema: { type: 'nonsense' } }), /config\.body_schema: is not a valid JSON Schema/],
    [action('validate-request', { openapi: { document: { swagger: '2.0' } } }), /config\.openapi: is not an OpenAPI 3 document/],
    [action('transform-body', { from: 'json', to: 'json' }), /config\.to: must differ from from \(json\); allowed values: xml/],
    [action('transform-body', { from: 'yaml', to: 'json' }), /config\.from: is not a known value: "yaml"; allowed values: json, xml/],
    [action('soap', { version: '1.3', namespace: 'urn:x' }), /config\.version: is not a known value: "1\.3"; allowed values: 1\.1, 1\.2/],
    [action('set-vars', { vars: [{ 'bad-name': 1 }] }), /config\.vars\[0\]\.bad-name: "bad-name" is not a valid variable name/],
    [action('forward', {}), /config: needs exactly one of upstream \(a pool name\) or url/],
    [action('forward', { url: 'ftp://x' }), /config\.url: .*is not a valid address/],
    [{ on_http_response: [{ actions: [{ type: 'compress-response', config: { algorithms: ['zstd'] } }] }] }, /config\.algorithms\[0\]: "zstd" is not a supported algorithm; allowed values: br, gzip, deflate/],
    [{ upstreams: { api: { targets: [] } } }, /upstreams\.api\.targets: must have at least 1 item/],
    [{ upstreams: { api: { targets: ['localhost:1'], health_check: { path: 'healthz' } } } }, /upstreams\.api\.health_check\.path: must start with \//],
  ]
  for (const [doc, pattern] of cases) {
    const err = errorOf(() => compilePolicy(doc))
    assert.equal(err.code, 'GW_ERR_POLICY_INVALID')
    assert.match(err.message, pattern)
  }
})

test('structured parts for tools', () => {
  const err = inFile('on_http_request:\n  - actions:\n      - type: rate-limit\n        config:\n          capacity: 10\n          rate: 60s\n          algorithm: leaky_bucket\n')
  assert.deepEqual({ line: err.location?.line, col: err.location?.col, path: err.location?.path, allowed: err.allowed }, {
    line: 7, col: 22, path: 'on_http_request[0].actions[0].config.algorithm', allowed: ['sliding_window', 'token_bucket'],
  })
  assert.equal(err.reason, 'is not a known value: "leaky_bucket"')
})
