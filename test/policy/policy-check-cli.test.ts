import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GW_BIN } from '../helpers/stack.js'

const dir = mkdtempSync(join(tmpdir(), 'gw-policy-check-'))

function gw(...args: string[]) {
  const r = spawnSync(process.execPath, [GW_BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', GW_CONFIG: join(dir, 'no-config.yml') } })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

test('gw policy check: a valid file exits 0', () => {
  const file = join(dir, 'ok.yml')
  writeFileSync(file, `on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: basic-auth
        config: {credentials: ["admin:pw"]}
on_http_response:
  - actions: [{type: compress-response}]
`)
  const r = gw('policy', 'check', file)
  assert.equal(r.code, 0, r.err)
  assert.match(r.out, /ok\.yml: valid traffic policy \(1 on_http_request rules, 1 on_http_response rules\)/)
})

test('gw policy check: an invalid file exits 2 with file:line:col, the problem and the allowed values', () => {
  const file = join(dir, 'bad.yml')
  writeFileSync(file, `on_http_request:
  - actions:
      - type: rate-limit
        config:
          capacity: 10
          rate: 60s
          algorithm: leaky_bucket
`)
  const r = gw('policy', 'check', file)
  assert.equal(r.code, 2)
  const text = r.err.replace(/\s*›\s*/g, ' ')
  assert.match(text, /bad\.yml:7:22: on_http_request\[0\]\.actions\[0\]\.config\.algorithm: is not a known value: "leaky_bucket"; allowed values: sliding_window, token_bucket/)
  assert.match(text, /GW_ERR_POLICY_INVALID/)

  const json = gw('policy', 'check', file, '--json')
  assert.equal(json.code, 2)
  assert.deepEqual(JSON.parse(json.out), {
    valid: false, code: 'GW_ERR_POLICY_INVALID', file, line: 7, col: 22, path: 'on_http_request[0].actions[0].config.algorithm',
    reason: 'is not a known value: "leaky_bucket"', allowed: ['sliding_window', 'token_bucket'],
  })
})

test('gw policy check: forward may name pools from the agent config file', () => {
  const policy = join(dir, 'routes.yml')
  writeFileSync(policy, 'on_http_request:\n  - actions: [{type: forward, config: {upstream: api}}]\n')
  const missing = gw('policy', 'check', policy)
  assert.equal(missing.code, 2)
  assert.match(missing.err.replace(/\s*›\s*/g, ' '), /config\.upstream: no upstream named "api"/)
  const config = join(dir, 'gw.yml')
  writeFileSync(config, 'upstreams:\n  api:\n    targets: [localhost:3001, localhost:3002]\n')
  const ok = gw('policy', 'check', policy, '--config', config)
  assert.equal(ok.code, 0, ok.err)
})
