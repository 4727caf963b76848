/**
 * The inspector's error codes and the table in docs/inspect.md agree both ways, with
 * the same HTTP status, as test/docs/errors-table.test.ts does for the protocol's codes.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { InspectErrorCodes } from '@gw/cli/inspect/errors'

const doc = readFileSync(fileURLToPath(new URL('../../../docs/inspect.md', import.meta.url)), 'utf8')

test('every inspector error code is in docs/inspect.md with its status, and nothing else is', () => {
  const rows = new Map<string, string>()
  for (const m of doc.matchAll(/^\| `(GW_ERR_[A-Z_]+)` \| ([^|]+) \|/gm)) rows.set(m[1]!, m[2]!.trim())
  for (const [code, { status }] of Object.entries(InspectErrorCodes)) {
    assert.ok(rows.has(code), `${code} is missing from the table in docs/inspect.md`)
    const documented = rows.get(code)!
    if (code !== 'GW_ERR_API_LISTEN') assert.equal(documented, String(status), `${code}'s status`)
  }
  for (const code of rows.keys()) assert.ok(Object.hasOwn(InspectErrorCodes, code), `docs/inspect.md lists ${code}, which does not exist`)
})
