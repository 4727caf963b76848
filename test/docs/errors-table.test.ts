import { it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { ErrorCodes } from '@gw/protocol'
import { PolicyErrorCodes } from '@gw/cli/policy/errors'
import { InspectErrorCodes } from '@gw/cli/inspect/errors'
import { AgentErrorCodes } from '@gw/cli/errors'

const table = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
const rows = new Map<string, { status: number; meaning: string; todo: string }>()
for (const line of table.split('\n')) {
  const m = /^\| `(GW_ERR_[A-Z0-9_]+)` \| (\d+) \| (.*) \| (.*) \|$/.exec(line)
  if (m) rows.set(m[1]!, { status: Number(m[2]), meaning: m[3]!, todo: m[4]! })
}

const all: Record<string, { status: number; message: string }> = { ...ErrorCodes, ...PolicyErrorCodes, ...InspectErrorCodes, ...AgentErrorCodes }

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
  for (const table of [ErrorCodes, PolicyErrorCodes, InspectErrorCodes, AgentErrorCodes]) {
    for (const code of Object.keys(table)) seen.set(code, (seen.get(code) ?? 0) + 1)
  }
  for (const [code, n] of seen) assert.equal(n, 1, `${code} is defined ${n} times`)
})
