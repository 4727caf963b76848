import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { compilePolicy, createPolicyState } from '@gw/cli/policy/index'
import { parseApiKeyFile } from '@gw/cli/policy/actions/api-key'
import { makeRequest, readAll, header } from './helpers.js'

const sha = (k: string) => createHash('sha256').update(k).digest('hex')

test('api-key: header or query parameter, hashed keys with names and scopes for later rules', async () => {
  const policy = compilePolicy({ on_http_request: [
    { actions: [{ type: 'api-key', config: {
      query_param: 'api_key',
      keys: [
        { name: 'ci', hash: `sha256:${sha('ci-key')}`, scopes: ['read'] },
        { name: 'admin', hash: sha('admin-key').toUpperCase(), scopes: ['read', 'write'] },
      ],
    } }] },
    { expressions: ["req.method != 'GET'", "!('write' in actions.gw.api_key.scopes)"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
    { actions: [{ type: 'add-headers', config: { headers: { 'x-key-name': '${actions.gw.api_key.name}' } } }] },
  ] })
  const run = async (init: Parameters<typeof makeRequest>[0]) => {
    const req = makeRequest(init)
    const out = await policy.onHttpRequest(req, createPolicyState())
    return { out, req, status: out.kind === 'respond' ? out.response.status : 200 }
  }
  const missing = await run({})
  assert.equal(missing.status, 401)
  if (missing.out.kind === 'respond') {
    assert.equal(header(missing.out.response.rawHeaders, 'www-authenticate'), 'ApiKey header="x-api-key"')
    assert.match((await readAll(missing.out.response.body)).toString(), /an API key is required in the x-api-key header/)
  }
  assert.equal((await run({ headers: { 'X-Api-Key': 'wrong' } })).status, 401)
  const ci = await run({ headers: { 'x-api-key': 'ci-key' } })
  assert.equal(ci.status, 200)
  assert.equal(header(ci.req.rawHeaders, 'x-key-name'), 'ci')
  assert.equal((await run({ target: '/x?api_key=ci-key' })).status, 200)
  assert.equal((await run({ method: 'POST', headers: { 'x-api-key': 'ci-key' } })).status, 403, 'ci has no write scope')
  assert.equal((await run({ method: 'POST', target: '/x?api_key=admin-key' })).status, 200)
  await policy.close()
})

test('api-key file format', () => {
  assert.deepEqual(parseApiKeyFile(`# comment\n\n${sha('a')} alpha read,write\nsha256:${sha('b')} beta\n${sha('c')}\n`), [
    { hash: sha('a'), name: 'alpha', scopes: ['read', 'write'], line: 3 },
    { hash: sha('b'), name: 'beta', scopes: [], line: 4 },
    { hash: sha('c'), name: 'key-5', scopes: [], line: 5 },
  ])
  assert.throws(() => parseApiKeyFile('plaintext-key ci\n'), /line 1: expected "<sha256 hex> <name> \[scope,scope\]"/)
})
