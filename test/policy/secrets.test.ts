/**
 * ngrok's `secrets.get('vault', 'name')` with gw's local vault: `gw secrets set|list|rm`
 * (the real binary) keep secrets.json beside the config file, 0600, and never print a
 * value; `gw http` runs ngrok's secrets examples with the values from it, through the
 * real relay and agent; a secret the vault lacks stops the policy at load, naming it.
 */
import { describe, it, before, after, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { sign as githubSign } from '@octokit/webhooks-methods'
import { compilePolicy, createPolicyState, PolicyError } from '@gw/cli/policy/index'
import { loadSecretStore } from '@gw/cli/config/secrets-file'
import { GW_BIN, spawnGw, spawnRelay, tempDir } from '../helpers/stack.js'
import { makeRequest } from './helpers.js'
import { fixture, fixturePolicy } from './ngrok-docs.js'
import { startEchoUpstream, startPolicyTunnel } from './tunnel-stack.js'

const dir = tempDir('gw-secrets-')
const configFile = join(dir, 'conf', 'gw.yml')
after(() => rmSync(dir, { recursive: true, force: true }))

function gw(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [GW_BIN, ...args], {
    encoding: 'utf8', input: input ?? '', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', GW_CONFIG: configFile },
  })
  return { code: r.status, out: r.stdout, err: r.stderr.replace(/\s*›\s*/g, ' ') }
}

test('gw secrets set, list and rm: secrets.json beside the config, 0600, values never printed', () => {
  const set = gw(['secrets', 'set', 'my-vault', 'password'], 'correct-horse\n')
  assert.equal(set.code, 0, set.err)
  assert.match(set.out, /Stored my-vault\/password in .*conf\/secrets\.json/)
  const file = join(dir, 'conf', 'secrets.json')
  assert.equal(statSync(file).mode & 0o777, 0o600)
  assert.equal(statSync(join(dir, 'conf')).mode & 0o777, 0o700)
  // The trailing newline of `echo` is not part of the value.
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { version: 1, vaults: { 'my-vault': { password: 'correct-horse' } } })
  assert.equal(gw(['secrets', 'set', 'webhooks-vault', 'github-secret'], 'gh-webhook-secret').code, 0)
  assert.equal(gw(['secrets', 'set', 'scratch', 'temp'], 'x').code, 0)
  assert.match(gw(['secrets', 'set', 'my-vault', 'password'], 'correct-horse').out, /Replaced my-vault\/password/)

  const list = gw(['secrets', 'list'])
  assert.equal(list.code, 0)
  assert.equal(list.out, 'my-vault/password\nscratch/temp\nwebhooks-vault/github-secret\n')
  assert.equal(gw(['secrets', 'list', 'my-vault']).out, 'my-vault/password\n')
  for (const r of [set, list]) assert.doesNotMatch(r.out + r.err, /correct-horse/)

  assert.equal(gw(['secrets', 'rm', 'scratch', 'temp']).code, 0)
  assert.doesNotMatch(gw(['secrets', 'list']).out, /scratch/)
  const gone = gw(['secrets', 'rm', 'scratch', 'temp'])
  assert.equal(gone.code, 1)
  assert.match(gone.err, /no secret scratch\/temp/)
  assert.equal(statSync(file).mode & 0o777, 0o600, 'still 0600 after rewrites')

  const badName = gw(['secrets', 'set', 'my vault', 'x'], 'v')
  assert.equal(badName.code, 1)
  assert.match(badName.err, /"my vault" is not a valid vault or secret name/)
  const empty = gw(['secrets', 'set', 'v', 'n'], '')
  assert.match(empty.err, /the value is empty/)
})

test('a secret the vault does not hold stops the policy at load, naming vault and name', () => {
  const policyFile = join(dir, 'missing.yml')
  writeFileSync(policyFile, `on_http_request:
  - actions:
      - type: basic-auth
        config: {credentials: ["admin:\${secrets.get('my-vault', 'nope')}"]}
`)
  const r = gw(['policy', 'check', policyFile])
  assert.equal(r.code, 2)
  assert.match(r.err, /missing\.yml:4:\d+: on_http_request\[0\]\.actions\[0\]\.config\.credentials\[0\]: secret "nope" is not in vault "my-vault"; set it with: gw secrets set my-vault nope/)
  // In an expression too.
  assert.throws(() => compilePolicy({ on_http_request: [{ expressions: ["secrets.get('v', 'k') == 'x'"], actions: [{ type: 'deny' }] }] }),
    (err: unknown) => err instanceof PolicyError && /secret "k" is not in vault "v"; set it with: gw secrets set v k/.test(err.message))
  // A field read at load takes no other ${…}: it would otherwise be taken as literal text.
  assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'basic-auth', config: { credentials: ['u:${req.host}'] } }] }] }),
    (err: unknown) => err instanceof PolicyError && /credentials\[0\]: takes no \$\{req\.host\}: this field is read once, when the policy loads/.test(err.message))
  assert.doesNotMatch(r.out + r.err, /correct-horse|gh-webhook-secret/, 'no value of the vault is printed')
})

test('secrets.get in expressions and per-request templates reads the vault the policy was compiled with', async () => {
  const secrets = loadSecretStore(configFile)
  const policy = compilePolicy({ on_http_request: [
    { expressions: ["req.headers['x-token'][0] != secrets.get('my-vault', 'password')"], actions: [{ type: 'deny', config: { status_code: 401 } }] },
    { actions: [{ type: 'add-headers', config: { headers: { 'x-upstream-key': "${secrets.get('webhooks-vault', 'github-secret')}" } } }] },
  ] }, { secrets })
  assert.equal((await policy.onHttpRequest(makeRequest({ headers: { 'x-token': 'wrong' } }), createPolicyState())).kind, 'respond')
  const req = makeRequest({ headers: { 'x-token': 'correct-horse' } })
  assert.equal((await policy.onHttpRequest(req, createPolicyState())).kind, 'forward')
  assert.equal(req.rawHeaders[req.rawHeaders.indexOf('x-upstream-key') + 1], 'gh-webhook-secret')
  await policy.close()
})

describe('ngrok-docs secrets examples through the real agent, with the vault gw secrets set filled', () => {
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>
  before(async () => {
    upstream = await startEchoUpstream('secrets')
  })
  after(() => upstream.close())

  it('basic-auth with credentials ["user123:${secrets.get(\'my-vault\', \'password\')}"]', async () => {
    const t = await startPolicyTunnel(compilePolicy(fixturePolicy(fixture('traffic-policy-secrets-8eac58')), { secrets: loadSecretStore(configFile) }), upstream.url)
    try {
      const basic = (cred: string) => ({ authorization: `Basic ${Buffer.from(cred).toString('base64')}` })
      assert.equal((await t.fetch('/', { headers: basic('user123:correct-horse') })).status, 200)
      assert.equal((await t.fetch('/', { headers: basic("user123:${secrets.get('my-vault', 'password')}") })).status, 401, 'the template is not a literal password')
      assert.equal((await t.fetch('/')).status, 401)
    } finally {
      await t.close()
    }
  })

  it('verify-webhook github with secret "${secrets.get(\'webhooks-vault\', \'github-secret\')}"', async () => {
    const t = await startPolicyTunnel(compilePolicy(fixturePolicy(fixture('traffic-policy-secrets-93131e')), { secrets: loadSecretStore(configFile) }), upstream.url)
    try {
      const body = JSON.stringify({ action: 'opened' })
      const good = await t.fetch('/hook', { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': await githubSign('gh-webhook-secret', body) } })
      assert.equal(good.status, 200)
      assert.equal(JSON.parse(good.text).body, body)
      const forged = await githubSign("${secrets.get('webhooks-vault', 'github-secret')}", body)
      assert.equal((await t.fetch('/hook', { method: 'POST', body, headers: { 'x-hub-signature-256': forged } })).status, 403)
    } finally {
      await t.close()
    }
  })

  it('gw http --policy-file with a secret: the real binaries, the value from secrets.json', async () => {
    const policyFile = join(dir, 'auth.yml')
    writeFileSync(policyFile, JSON.stringify(fixturePolicy(fixture('traffic-policy-secrets-8eac58'))))
    const relay = await spawnRelay({ workers: null, stateDir: join(dir, 'relay') })
    let agent: ReturnType<typeof spawnGw> | undefined
    try {
      const relayUrl = relay.url
      agent = spawnGw(['http', new URL(upstream.url).port, '--relay', relayUrl, '--policy-file', policyFile, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: configFile })
      const tunnel = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
      const get = async (cred?: string) => (await request(`${relayUrl}/`, {
        headers: { host: new URL(tunnel.url).host, ...(cred ? { authorization: `Basic ${Buffer.from(cred).toString('base64')}` } : {}) },
      })).statusCode
      assert.equal(await get('user123:correct-horse'), 200)
      assert.equal(await get('user123:wrong'), 401)
      assert.doesNotMatch(agent.lines.join('\n') + agent.stderr(), /correct-horse/, 'the value is never logged')
    } finally {
      agent?.kill()
      if (agent) await agent.exited
      await relay.stop()
    }
  })
})
