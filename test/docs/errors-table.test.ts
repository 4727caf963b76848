import { it } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ErrorCodes } from '@gw/protocol'
import { CliErrorCodes } from '@gw/cli/errors'
import { RelayErrorCodes } from '@gw/relay'

const table = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
const rows = new Map<string, { status: number; meaning: string; todo: string }>()
for (const line of table.split('\n')) {
  const m = /^\| `(GW_ERR_[A-Z0-9_]+)` \| (\d+) \| (.*) \| (.*) \|$/.exec(line)
  if (m) rows.set(m[1]!, { status: Number(m[2]), meaning: m[3]!, todo: m[4]! })
}

const all: Record<string, { status: number; message: string }> = { ...ErrorCodes, ...RelayErrorCodes, ...CliErrorCodes }

it('lists every error code, with its status, meaning and what to do', () => {
  for (const [code, info] of Object.entries(all)) {
    const row = rows.get(code)
    assert.ok(row, `docs/errors.md has no row for ${code}`)
    assert.equal(row.status, info.status, `${code}: status`)
    assert.equal(row.meaning, info.message, `${code}: meaning`)
    assert.ok(row.todo.trim().length > 10, `${code}: the "what to do" column is empty`)
  }
})

it('lists no code that does not exist', () => {
  for (const code of rows.keys()) assert.ok(code in all, `docs/errors.md lists ${code}, which no code table defines`)
})

it('never defines one code twice across packages', () => {
  const seen = new Map<string, number>()
  for (const table of [ErrorCodes, RelayErrorCodes, CliErrorCodes]) {
    for (const code of Object.keys(table)) seen.set(code, (seen.get(code) ?? 0) + 1)
  }
  for (const [code, n] of seen) assert.equal(n, 1, `${code} is defined ${n} times`)
})

/**
 * The sources, with each catalogue's own rows left out: a code that appears only in its
 * row is never raised, and a code written anywhere else must be catalogued and documented.
 */
function sourceCodes(): Map<string, string[]> {
  const root = new URL('../../../packages/', import.meta.url)
  const found = new Map<string, string[]>()
  const walk = (dir: URL): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (entry.name !== 'dist' && entry.name !== 'node_modules') walk(new URL(`${entry.name}/`, dir))
        continue
      }
      if (!/\.tsx?$/.test(entry.name)) continue
      const file = new URL(entry.name, dir)
      // A catalogue row is `  GW_ERR_X: { status: …, message: … },`.
      const text = readFileSync(file, 'utf8').replace(/^\s+GW_ERR_[A-Z0-9_]+: \{ status: .*$/gm, '')
      for (const m of text.matchAll(/GW_ERR_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])/g)) {
        const list = found.get(m[0]) ?? []
        list.push(fileURLToPath(file).replace(fileURLToPath(root), 'packages/'))
        found.set(m[0], list)
      }
    }
  }
  for (const pkg of ['protocol', 'relay', 'cli']) walk(new URL(`${pkg}/src/`, root))
  return found
}

it('raises every catalogued code somewhere in packages/*/src', () => {
  const used = sourceCodes()
  const never = Object.keys(all).filter((code) => !used.has(code))
  assert.deepEqual(never, [], `catalogued but never raised: ${never.join(', ')}; raise them or remove them from the catalogue and docs/errors.md`)
})

it('catalogues and documents every code the sources raise', () => {
  for (const [code, files] of sourceCodes()) {
    assert.ok(code in all, `${code} (in ${files[0]}) is in no catalogue`)
    assert.ok(rows.has(code), `${code} (in ${files[0]}) has no row in docs/errors.md`)
  }
})
