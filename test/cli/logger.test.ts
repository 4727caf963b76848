/**
 * The JSON log line is built by hand (output/logger.ts jsonLine) because it is on the
 * request path; it must stay the text JSON.stringify gives for the same object.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { jsonLine } from '@gw/cli/output/logger'

const t = '2026-01-02T03:04:05.678Z'

describe('jsonLine', () => {
  it('is byte for byte what JSON.stringify gives for {t, lvl, msg, obj?, ...fields}', () => {
    const cases: Array<[string, string | undefined, Record<string, unknown>]> = [
      ['GET /', undefined, { status: 200, duration_ms: 3 }],
      ['POST /a?b="c"\n\u2028é', undefined, { status: 502, error: 'GW_ERR_UPSTREAM_REFUSED', replay_of: undefined }],
      ['started tunnel', undefined, { name: 'command_line', url: 'http://x.localhost:1', addr: 'http://localhost:3000' }],
      ['relay started', 'relay', { http_port: 80, https_port: null, nested: { a: [1, 'two', { three: true }] }, fn: () => 1 }],
      ['odd keys', undefined, { 'with space': 1, 'quote"d': 2, 'ünï': 3, '': 4, 'line\nbreak': 5 }],
      // A field named like the line's own keys replaces the value in place, as a spread does.
      ['shadowed', undefined, { msg: 'from a field', t: 'x', other: 1 }],
      ['shadowed obj', 'relay', { obj: 'agent' }],
      ['no fields', 'relay', {}],
    ]
    for (const [msg, component, fields] of cases) {
      const expected = JSON.stringify({ t, lvl: 'info', msg, ...(component !== undefined ? { obj: component } : {}), ...fields })
      assert.equal(jsonLine(t, 'info', msg, component, fields), expected)
    }
  })
})
