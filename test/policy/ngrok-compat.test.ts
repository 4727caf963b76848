/**
 * Policies as ngrok's documentation writes them load unchanged (the examples are
 * transcribed from ngrok-docs' traffic-policy action pages).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compilePolicy, createPolicyState, parsePolicyText } from '@gw/cli/policy/index'
import { AgentEvents } from '@gw/cli/agent/events'
import { makeRequest, header } from './helpers.js'

test('the jwt-validation example, in the old inbound format, with a body token', async () => {
  const policy = compilePolicy({ inbound: [{ actions: [{ type: 'jwt-validation', config: {
    issuer: { allow_list: [{ value: 'https://example.com/issuer' }] },
    audience: { allow_list: [{ value: 'urn:example:api' }] },
    http: { tokens: [
      { type: 'access_token', method: 'header', name: 'Authorization', prefix: 'Bearer ' },
      { type: 'it+jwt', method: 'body', name: '_id_token' },
    ] },
    jws: { allowed_algorithms: ['RS256', 'ES256'], keys: { sources: { additional_jkus: ['https://example.com/issuer/jku'] } } },
  } }] }] })
  assert.equal(policy.empty, false)
  await policy.close()
})

test('the rate-limit example: bucket by Host with a conditional expression', async () => {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: {
    name: 'Only allow 30 requests per minute', algorithm: 'sliding_window', capacity: 30, rate: '60s',
    bucket_key: ["hasReqHeader('host') ? getReqHeader('host')[0] : 'unknown'"],
  } }] }] }, { now: () => 0 })
  let last
  for (let i = 0; i < 31; i++) last = await policy.onHttpRequest(makeRequest({ headers: { host: 'a.example' } }), createPolicyState())
  assert.equal(last!.kind === 'respond' && last!.response.status, 429)
  const other = await policy.onHttpRequest(makeRequest({ headers: { host: 'b.example' } }), createPolicyState())
  assert.equal(other.kind, 'forward')
  await policy.close()
})

test('the log example: ${endpoint.id} interpolation', async () => {
  const events = new AgentEvents()
  const lines: Array<{ fields: Record<string, unknown> }> = []
  events.on('log', (l) => lines.push(l))
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'log', config: {
    metadata: { message: 'Log action executed.', endpoint_id: '${endpoint.id}' },
  } }] }] }, { events, endpoint: 'web' })
  await policy.onHttpRequest(makeRequest(), createPolicyState())
  assert.equal(lines[0]!.fields.endpoint_id, 'web')
  assert.equal(lines[0]!.fields.message, 'Log action executed.')
  await policy.close()
})

test('the url-rewrite regex example', async () => {
  const policy = compilePolicy({ on_http_request: [{ expressions: ["req.url.path.startsWith('/products')"], actions: [
    { type: 'url-rewrite', config: { from: '/products/?([.*]+)?', to: '/products.php?query=$1' } },
  ] }] })
  const req = makeRequest({ target: '/products/123' })
  await policy.onHttpRequest(req, createPolicyState())
  assert.equal(req.target, '/products.php?query=123')
  await policy.close()
})

test('a YAML policy with add-headers, remove-headers and interpolation as ngrok documents it', async () => {
  const { value, source } = parsePolicyText(`
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-client-ip: "\${conn.client_ip}"
            x-endpoint: "\${endpoint.url}"
      - type: remove-headers
        config:
          headers: [x-internal]
on_http_response:
  - expressions: ["res.status_code >= 400"]
    actions:
      - type: custom-response
        config:
          status_code: 503
          content: "<html><body>Down for maintenance</body></html>"
`, 'policy.yml')
  const policy = compilePolicy(value, { source })
  const state = createPolicyState()
  const req = makeRequest({ headers: { 'x-internal': '1' }, clientIp: '198.51.100.3', host: 'app.example:8443' })
  await policy.onHttpRequest(req, state)
  assert.equal(header(req.rawHeaders, 'x-client-ip'), '198.51.100.3')
  assert.equal(header(req.rawHeaders, 'x-endpoint'), 'https://app.example:8443')
  assert.equal(header(req.rawHeaders, 'x-internal'), undefined)
  await policy.close()
})

test('inbound and on_http_request together are refused', () => {
  assert.throws(() => compilePolicy({ inbound: [], on_http_request: [] }), /inbound: is the earlier name of on_http_request; give one of them/)
})
