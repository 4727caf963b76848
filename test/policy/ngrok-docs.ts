/** The ngrok-docs fixtures (manifest.json) and their expectations, for the fixture tests. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { SecretStore } from '@gw/cli/policy/index'

export interface Fixture {
  id: string
  sources: Array<{ page: string; line: number; lang: string; context: string }>
  policy: unknown
}
export interface Expectation {
  status?: 'refused' | 'todo'
  reason?: 'ngrok-cloud' | 'docs-wrong' | 'tcp-endpoints'
  match?: string
  note?: string
  fill?: Record<string, string>
  /**
   * A part of the machine the fixture's action runs on (`modsecurity`: libmodsecurity and
   * the OWASP CRS). Where it is missing, the fixture must be refused saying what to install.
   */
  needs?: 'modsecurity'
  /**
   * The endpoint the example is for, when its document alone does not say (`policyKind`
   * takes on_tcp_connect alone for a tcp or tls endpoint's): `http` for ngrok's terminate-tls
   * examples without a certificate, which are an https endpoint's (the relay runs them).
   */
  kind?: 'http'
  /** `vault/name` → value: the vault the fixture's `secrets.get` calls read (set with gw secrets set). */
  secrets?: Record<string, string>
}

const dir = fileURLToPath(new URL('../../policy/fixtures/ngrok-docs/', import.meta.url))
export const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { fixtures: Fixture[] }
export const expectations = JSON.parse(readFileSync(join(dir, 'expectations.json'), 'utf8')) as Record<string, Expectation>

export function fixture(id: string): Fixture {
  const f = manifest.fixtures.find((x) => x.id === id)
  if (!f) throw new Error(`no ngrok-docs fixture ${id}`)
  return f
}

/** The vault a fixture is compiled with: the secrets its expectation lists. */
export function fixtureSecrets(f: Fixture): SecretStore {
  const secrets = expectations[f.id]?.secrets ?? {}
  return { get: (vault, name) => secrets[`${vault}/${name}`] }
}

/** The fixture's policy with the reader's placeholders filled in. */
export function fixturePolicy(f: Fixture): unknown {
  let text = JSON.stringify(f.policy)
  for (const [from, to] of Object.entries(expectations[f.id]?.fill ?? {})) text = text.split(from).join(to)
  return JSON.parse(text) as unknown
}
