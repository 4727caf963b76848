import { it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { compilePolicy } from '@gw/cli/policy/index'
import { crsPaths } from '@gw/cli/policy/waf/crs'
import { tlsSecret } from '../helpers/tls-pair.js'

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')

it("the README's example policy validates", async () => {
  const example = /```yaml\n(# policy\.yml[\s\S]*?)```/.exec(readme)
  assert.ok(example, 'the README has the policy example')
  await compilePolicy(parse(example[1]!)).close()
})

it("every action in the README's table has a config that validates", async () => {
  const table = readme.slice(readme.indexOf('| Action | Example `config` |'))
  const lines = table.split('\n').slice(2)
  const rows = lines.slice(0, lines.findIndex((l) => !l.startsWith('|')))
  const { ACTIONS } = await import('@gw/cli/policy/index')
  const listed = new Set(rows.flatMap((row) => [...row.split(' | ')[0]!.matchAll(/`([a-z-]+)`/g)].map((m) => m[1]!)))
  assert.ok(ACTIONS.size >= 21, `ACTIONS has ${ACTIONS.size} entries`)
  for (const action of ACTIONS.keys()) assert.ok(listed.has(action), `the README's table leaves out ${action}`)
  for (const row of rows) {
    const [names, example] = row.split(' | ')
    const types = [...names!.matchAll(/`([a-z-]+)`/g)].map((m) => m[1]!)
    const configs = [...example!.matchAll(/`(\{.*?\})`(?=[:/ ]|$| \(|\s*\|)/g)].map((m) => m[1]!)
    assert.ok(configs.length >= 1, `no config for ${types.join('/')}`)
    types.forEach((type, i) => {
      const config = parse(configs[Math.min(i, configs.length - 1)]!) as unknown
      // terminate-tls runs in on_tcp_connect only (a tcp or tls endpoint's policy), its PEMs from the docs' vault.
      if (type === 'terminate-tls') {
        assert.doesNotThrow(() => void compilePolicy({ on_tcp_connect: [{ actions: [{ type, config }] }] }, { kind: 'tls', secrets: { get: tlsSecret } }).close(), `${type}: ${configs[i]}`)
        return
      }
      const phase = type === 'sse-find-replace' ? 'on_event_stream_message' : type === 'compress-response' || type === 'response-body-find-replace' || type === 'owasp-crs-response' ? 'on_http_response' : 'on_http_request'
      const doc = { upstreams: { orders: { targets: ['localhost:3001'] } }, [phase]: [{ actions: [{ type, config }] }] }
      // The OWASP CRS actions need ModSecurity on the machine; without it, the refusal says what to install.
      const missing = type.startsWith('owasp-crs') ? crsPaths() : undefined
      if (typeof missing === 'string') assert.throws(() => compilePolicy(doc), (err: Error) => err.message.includes(missing), type)
      else assert.doesNotThrow(() => void compilePolicy(doc).close(), `${type}: ${configs[i]}`)
    })
  }
})
