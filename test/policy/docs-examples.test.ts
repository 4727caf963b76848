/**
 * Every YAML example in docs/policy.md compiles: fragments (a rule, an action, a phase)
 * are wrapped into a policy first. Examples that name files on the reader's disk are
 * compiled with those parts removed, and the secrets.get example with its secret set.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { compilePolicy, policyKind } from '@gw/cli/policy/index'
import { tlsSecret } from '../helpers/tls-pair.js'

const doc = readFileSync(fileURLToPath(new URL('../../../docs/policy.md', import.meta.url)), 'utf8')
const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!)

function wrap(text: string): unknown {
  const value = parse(text) as unknown
  if (Array.isArray(value)) {
    const first = value[0] as Record<string, unknown>
    const rules = 'type' in first ? [{ actions: value }] : value
    return { on_http_request: rules }
  }
  const obj = value as Record<string, unknown>
  if ('type' in obj) return { on_http_request: [{ actions: [obj] }] }
  // A gw start config file: its endpoints' policies, one document (the example has one that is not empty).
  if ('endpoints' in obj) {
    const policies = (obj.endpoints as Array<{ traffic_policy?: unknown }>).map((e) => e.traffic_policy).filter(Boolean)
    assert.equal(policies.length, 1, 'a config-file example in docs/policy.md has one traffic_policy')
    return policies[0]
  }
  return obj
}

test('docs/policy.md has an example for every action', async () => {
  const { ACTIONS } = await import('@gw/cli/policy/index')
  const headings = doc.split('\n').filter((l) => l.startsWith('### ')).map((l) => l.slice(4).replace('(gw)', '').split('/').map((w) => w.trim()))
  for (const type of ACTIONS.keys()) assert.ok(headings.some((h) => h.includes(type)), `no section for ${type}`)
})

test('every YAML example in docs/policy.md validates', async () => {
  assert.ok(blocks.length > 15)
  for (const text of blocks) {
    // Drop lines that point at files the reader would have (keys_file, openapi file).
    const cleaned = text.split('\n').filter((l) => !/keys_file:|openapi: \{file:/.test(l)).join('\n')
    let docValue: unknown
    try {
      docValue = wrap(cleaned)
    } catch (err) {
      assert.fail(`not YAML:\n${text}\n${(err as Error).message}`)
    }
    if (/openapi: \{file:/.test(text)) continue
    try {
      // The secrets the docs' examples name, as `gw secrets set` (the docs' own sh block) stores them.
      // An on_tcp_connect example is a tcp endpoint's policy, checked as gw policy check does.
      const policy = compilePolicy(docValue, { kind: policyKind(docValue), secrets: { get: (v, n) => (v === 'webhooks-vault' && n === 'github-secret' ? 'example-secret' : tlsSecret(v, n)) } })
      await policy.close()
    } catch (err) {
      assert.fail(`example does not validate:\n${text}\n${(err as Error).message}`)
    }
  }
})
