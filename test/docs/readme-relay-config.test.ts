/**
 * The README's example relay.yml (Config file and reload) is one the relay loads: read by
 * the relay's own loader, with its `env:` and `file:` tokens given, and its error-line
 * example is the message the loader gives. A key renamed in the loader breaks this test,
 * not an operator's first start.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadRelayConfig } from '@gw/relay'
import { tempDir } from '../helpers/stack.js'

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
const sha = (s: string): string => createHash('sha256').update(s).digest('hex')

it("the README's example relay.yml loads, with what its comments say", (t) => {
  const example = /```yaml\n(# \/etc\/gw\/relay\.yml\n[\s\S]*?)```/.exec(readme)
  assert.ok(example, 'the README has the relay.yml example')
  const dir = tempDir()
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'bob'), 'bob-token\n')
  assert.match(example[1]!, /file: \/etc\/gw\/tokens\/bob/)
  writeFileSync(join(dir, 'relay.yml'), example[1]!.replace('/etc/gw/tokens/bob', join(dir, 'bob')))
  const config = loadRelayConfig(join(dir, 'relay.yml'), { GW_TOKEN_CI: 'ci-token' })
  assert.equal(config.settings.domain, 'tunnel.example.com')
  assert.deepEqual(config.settings.relayCache, { maxBytes: 256_000_000, maxEntryBytes: 8_000_000, dir: '/var/cache/gw-relay', dirMaxBytes: 10_000_000_000 })
  assert.equal(config.drainTimeout, 30)
  assert.deepEqual(config.limits, { tunnels: 10, streams: 200, rps: 100, bandwidth: 10 * 1024 * 1024, headerSize: 16 * 1024, bodySize: 10 * 1024 * 1024 })
  assert.deepEqual(config.tokens.map((x) => x.label), ['alice', 'ci', 'bob'])
  assert.equal(config.tokens[0]!.digest.toString('hex'), sha('test'), 'the sha256 line is printf %s test | sha256sum')
  assert.deepEqual([config.tokens[0]!.names, config.tokens[0]!.tcpPorts, config.tokens[0]!.limits], [['app', 'api'], [20001], { rps: 20 }])
  assert.equal(config.tokens[1]!.digest.toString('hex'), sha('ci-token'))
  assert.equal(config.tokens[2]!.digest.toString('hex'), sha('bob-token'))
})

it("the README's example of a refused file is the loader's message", (t) => {
  const line = /```\n(relay\.yml: tokens\[1\]\.limits\.rps: .*)\n```/.exec(readme)
  assert.ok(line, 'the README shows a refused file')
  const dir = tempDir()
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'relay.yml'), `tokens:\n  - { sha256: ${sha('a')} }\n  - { sha256: ${sha('b')}, limits: { rps: fast } }\n`)
  assert.throws(() => loadRelayConfig(join(dir, 'relay.yml'), {}), (err: Error & { code?: string }) => {
    assert.equal(`${err.message.replace(dir + '/', '')} (${err.code})`, line[1])
    return true
  })
})
