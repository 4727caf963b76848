import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { compilePolicy, createPolicyState } from '@gw/cli/policy/index'
import { makeRequest } from './helpers.js'
import { startPolicyGateway, startEchoUpstream, type PolicyGateway } from './tunnel-stack.js'

const openapi = `
openapi: 3.0.3
info: {title: Orders, version: "1"}
paths:
  /orders:
    post:
      operationId: createOrder
      parameters:
        - {name: dry_run, in: query, schema: {type: boolean}}
        - {name: X-Request-Id, in: header, required: true, schema: {type: string, minLength: 8}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/NewOrder'}
  /orders/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
  /orders/mine:
    get: {}
components:
  schemas:
    NewOrder:
      type: object
      required: [sku, quantity]
      additionalProperties: false
      properties:
        sku: {type: string, pattern: '^[A-Z]{3}-[0-9]+$'}
        quantity: {type: integer, minimum: 1, maximum: 100}
        email: {type: string, format: email}
`

let upstream: Awaited<ReturnType<typeof startEchoUpstream>>
let gateway: PolicyGateway

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-openapi-'))
  const file = join(dir, 'openapi.yml')
  writeFileSync(file, openapi)
  upstream = await startEchoUpstream()
  const policy = compilePolicy({ on_http_request: [
    { expressions: ["req.url.path.startsWith('/orders')"], actions: [{ type: 'validate-request', config: { openapi: { file } } }] },
    { expressions: ["req.url.path == '/plain'"], actions: [{ type: 'validate-request', config: {
      body_schema: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      query_schema: { type: 'object', properties: { page: { type: 'integer' } } },
      max_body_size: 64,
    } }] },
  ] })
  gateway = await startPolicyGateway(policy, upstream.url)
})
after(async () => {
  await gateway.close()
  await upstream.close()
})

async function send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${gateway.url}${path}`, {
    method: method as 'GET', headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: res.statusCode, json: JSON.parse(await res.body.text()) as Record<string, any> }
}

test('OpenAPI: a valid request reaches the upstream with its body intact', async () => {
  const hitsBefore = upstream.hits
  const r = await send('POST', '/orders?dry_run=true', { sku: 'ABC-12', quantity: 2, email: 'a@b.test' }, { 'x-request-id': 'req-12345678' })
  assert.equal(r.status, 200, JSON.stringify(r.json))
  assert.deepEqual(JSON.parse(r.json.body), { sku: 'ABC-12', quantity: 2, email: 'a@b.test' })
  assert.equal(upstream.hits, hitsBefore + 1)
  assert.equal((await send('GET', '/orders/17')).status, 200)
  assert.equal((await send('GET', '/orders/mine')).status, 200, 'a literal path wins over /orders/{id}')
})

test('OpenAPI: a bad request gets 400 with every problem and never reaches the upstream', async () => {
  const hitsBefore = upstream.hits
  const r = await send('POST', '/orders?dry_run=maybe', { sku: 'abc', quantity: 0, email: 'nope', extra: 1 }, { 'x-request-id': 'short' })
  assert.equal(r.status, 400)
  assert.equal(r.json.error, 'invalid_request')
  const seen = (r.json.errors as Array<{ in: string; path: string }>).map((e) => `${e.in} ${e.path}`).sort()
  assert.deepEqual(seen, ['body /email', 'body /extra', 'body /quantity', 'body /sku', 'header /x-request-id', 'query /dry_run'])
  assert.equal(upstream.hits, hitsBefore)
  const badId = await send('GET', '/orders/0')
  assert.equal(badId.status, 400)
  assert.equal(badId.json.errors[0].in, 'path')
  const missingBody = await send('POST', '/orders', undefined, { 'x-request-id': 'req-12345678' })
  assert.equal(missingBody.status, 400)
  assert.match(JSON.stringify(missingBody.json.errors), /a request body is required/)
  const notJson = await send('POST', '/orders', '{oops', { 'x-request-id': 'req-12345678' })
  assert.equal(notJson.status, 400)
  assert.match(JSON.stringify(notJson.json.errors), /is not valid JSON/)
})

test('OpenAPI: unknown paths are 404 and unknown methods 405', async () => {
  assert.equal((await send('GET', '/orders/1/items')).status, 404)
  assert.equal((await send('DELETE', '/orders/1')).status, 405)
})

test('JSON Schema config: body and query, and 413 over max_body_size', async () => {
  assert.equal((await send('POST', '/plain?page=2', { name: 'x' })).status, 200)
  const bad = await send('POST', '/plain?page=two', { name: 3 })
  assert.equal(bad.status, 400)
  assert.deepEqual(bad.json.errors.map((e: { in: string }) => e.in).sort(), ['body', 'query'])
  const big = await send('POST', '/plain', { name: 'x'.repeat(100) })
  assert.equal(big.status, 413)
})

test('OpenAPI servers: operation paths are relative to the server URL path', async () => {
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'validate-request', config: { openapi: { document: {
    openapi: '3.1.0', info: { title: 't', version: '1' }, servers: [{ url: 'https://api.example.com/v1' }],
    paths: { '/items/{id}': { get: { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }] } } },
  } } } }] }] })
  const status = async (target: string) => {
    const out = await policy.onHttpRequest(makeRequest({ target }), createPolicyState())
    return out.kind === 'respond' ? out.response.status : 200
  }
  assert.equal(await status('/v1/items/5'), 200)
  assert.equal(await status('/v1/items/five'), 400)
  assert.equal(await status('/items/5'), 404)
  await policy.close()
})
