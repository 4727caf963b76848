/**
 * Every Traffic Policy example in ngrok's documentation (extracted by
 * scripts/extract-ngrok-policy-examples.mjs into fixtures/ngrok-docs/manifest.json) either
 * loads, or is refused with a message that names what is unsupported. expectations.json
 * says which, per fixture:
 * - absent: accepted;
 * - `refused` with a `reason`: `ngrok-cloud` (data only ngrok's cloud has), `docs-wrong`
 *   (the example is wrong in ngrok's own docs, with a `note` saying how) or
 *   `tcp-endpoints` (an on_tcp_connect action beside HTTP phases other than terminate-tls,
 *   which the relay runs: gw runs the others on tcp and tls endpoints only, since an http
 *   endpoint's connections end at the relay; none of ngrok's examples is one now);
 * - `todo`: something gw does not implement yet; the entry holds the refusal it gets today.
 * A `fill` replaces placeholders the docs leave for the reader (`$YOUR_IP`) first;
 * `secrets` is the vault the fixture's `secrets.get` calls read, as `gw secrets set` fills it.
 * Refused and todo entries must fail with their message, so when gw starts accepting one
 * the table has to be updated: the counts in docs/ngrok-compatibility.md stay honest.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compilePolicy, policyKind } from '@gw/cli/policy/index'
import { crsPaths } from '@gw/cli/policy/waf/crs'
import { GW_BIN } from '../helpers/stack.js'
import { expectations, fixturePolicy, fixtureSecrets, manifest, type Fixture } from './ngrok-docs.js'

/**
 * The accepted count never goes down: raise this when gw learns more (and the table in
 * docs/ngrok-compatibility.md with it, which the test also checks).
 */
const ACCEPTED_AT_LEAST = 258

async function compileError(f: Fixture): Promise<string | undefined> {
  try {
    // ngrok's on_tcp_connect examples are for TCP and TLS endpoints: checked as such, as gw policy check does
    // (unless the expectation names the endpoint: gw policy check --endpoint http).
    const doc = fixturePolicy(f)
    const policy = compilePolicy(doc, { secrets: fixtureSecrets(f), kind: expectations[f.id]?.kind ?? policyKind(doc) })
    await policy.close()
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

test('the manifest holds ngrok-docs examples and every expectation names one of them', () => {
  assert.ok(manifest.fixtures.length > 300, `only ${manifest.fixtures.length} fixtures`)
  const ids = new Set(manifest.fixtures.map((f) => f.id))
  for (const id of Object.keys(expectations)) assert.ok(ids.has(id), `expectations.json names ${id}, which is not in the manifest`)
  for (const f of manifest.fixtures) assert.ok(f.sources[0]!.page.endsWith('.mdx'), f.id)
})

test('each ngrok-docs example is accepted, or refused as expectations.json says', async (t) => {
  const counts: Record<string, number> = {}
  const wrong: string[] = []
  for (const f of manifest.fixtures) {
    const e = expectations[f.id] ?? {}
    const status = e.status ?? 'accepted'
    const key = e.reason ? `${status}/${e.reason}` : status
    counts[key] = (counts[key] ?? 0) + 1
    const error = await compileError(f)
    const where = `${f.id} (${f.sources[0]!.page}:${f.sources[0]!.line})`
    if (status === 'accepted') {
      // Accepted where the machine has what it needs, refused with the install hint where not.
      const missing = e.needs === 'modsecurity' ? crsPaths() : undefined
      if (typeof missing === 'string') {
        if (!error?.includes(missing)) wrong.push(`${where}: without ModSecurity expected the refusal ${JSON.stringify(missing)}, got: ${error ?? 'accepted'}`)
      } else if (error !== undefined) wrong.push(`${where}: expected to load, got: ${error.split('\n')[0]}`)
      continue
    }
    if (status === 'refused') {
      assert.ok(['ngrok-cloud', 'docs-wrong', 'tcp-endpoints'].includes(e.reason ?? ''), `${where}: a refusal needs a reason`)
      if (e.reason === 'docs-wrong') assert.ok(e.note, `${where}: say what is wrong in ngrok's docs`)
    }
    if (error === undefined) wrong.push(`${where}: expected ${key}, but it loads now; update expectations.json`)
    else if (!error.includes(e.match ?? '\u0000')) wrong.push(`${where}: expected a refusal with ${JSON.stringify(e.match)}, got: ${error.split('\n')[0]}`)
  }
  t.diagnostic(`ngrok-docs examples: ${manifest.fixtures.length} total, ${JSON.stringify(counts)}`)
  assert.deepEqual(wrong, [])
  assert.ok((counts.accepted ?? 0) >= ACCEPTED_AT_LEAST, `only ${counts.accepted} accepted, fewer than the ${ACCEPTED_AT_LEAST} before`)
  const table = readFileSync(fileURLToPath(new URL('../../../docs/ngrok-compatibility.md', import.meta.url)), 'utf8')
  const row = (label: string) => Number(new RegExp(`^\\| ${label}[^|]*\\| (\\d+) \\|$`, 'm').exec(table)?.[1])
  assert.equal(row('accepted'), counts.accepted, 'docs/ngrok-compatibility.md: the accepted count')
  assert.equal(row('refused: ngrok-cloud'), counts['refused/ngrok-cloud'], 'docs/ngrok-compatibility.md: the ngrok-cloud count')
  assert.equal(row('not yet supported'), counts.todo, 'docs/ngrok-compatibility.md: the todo count')
})

test('gw policy check gives the same answer for a fixture file as the engine', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'gw-ngrok-docs-'))
  const gw = (file: string, ...flags: string[]) => spawnSync(process.execPath, [GW_BIN, 'policy', 'check', file, ...flags], {
    encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', GW_CONFIG: join(tmp, 'none.yml') },
  })
  const accepted = manifest.fixtures.find((f) => !expectations[f.id])!
  writeFileSync(join(tmp, 'ok.json'), JSON.stringify(fixturePolicy(accepted)))
  const ok = gw(join(tmp, 'ok.json'))
  assert.equal(ok.status, 0, ok.stderr)
  const refusedId = Object.keys(expectations).find((id) => expectations[id]!.reason === 'docs-wrong')!
  const refused = manifest.fixtures.find((f) => f.id === refusedId)!
  writeFileSync(join(tmp, 'bad.json'), JSON.stringify(fixturePolicy(refused)))
  const bad = gw(join(tmp, 'bad.json'))
  assert.equal(bad.status, 2)
  assert.ok(bad.stderr.includes(expectations[refusedId]!.match!), bad.stderr)
  // ngrok's terminate-tls example without a certificate: a tls endpoint's needs one, an https endpoint's (the relay runs it) does not.
  const versions = manifest.fixtures.find((f) => f.id === 'traffic-policy-actions-terminate-tls-d5cbc3')!
  writeFileSync(join(tmp, 'versions.json'), JSON.stringify(fixturePolicy(versions)))
  const asTls = gw(join(tmp, 'versions.json'))
  assert.equal(asTls.status, 2)
  assert.match(asTls.stderr.replace(/\s*\n ›\s+/g, ' '), /terminate-tls needs server_certificate and server_private_key .* on an http endpoint \(gw http\) the relay runs terminate-tls/)
  const asHttps = gw(join(tmp, 'versions.json'), '--endpoint', 'http')
  assert.equal(asHttps.status, 0, asHttps.stderr)
  assert.match(asHttps.stdout, /valid traffic policy .*terminate-tls run by the relay/)
})
