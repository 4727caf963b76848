/**
 * The request-target normalisation as a table: what each target becomes, or that it is
 * refused with GW_ERR_REQUEST_TARGET_INVALID. The end-to-end side (a deny rule holding
 * for every spelling of /admin) is in test/e2e/agent-pipeline.test.ts.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { normaliseTarget } from '@gw/cli/agent/request-target'

const HOST = 'app.gw.test'

const KEPT: Array<[string, string]> = [
  ['/', '/'],
  ['/a/b?c=1', '/a/b?c=1'],
  ['/a/b/', '/a/b/'],
  ['/a?x=/../y//z%2F', '/a?x=/../y//z%2F'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/a.b/..c/.d', '/a.b/..c/.d'],
]

const NORMALISED: Array<[string, string]> = [
  ['//admin', '/admin'],
  ['/x/../admin', '/admin'],
  ['/./admin/', '/admin/'],
  ['/a/./b//c/../d?x=/../y', '/a/b/d?x=/../y'],
  ['/../../etc/passwd', '/etc/passwd'],
  ['/a/b/..', '/a/'],
  ['/a/b/.', '/a/b/'],
  ['/..', '/'],
  [`http://${HOST}/admin/x`, '/admin/x'],
  [`HTTP://${HOST.toUpperCase()}?q=1`, '/?q=1'],
  [`https://${HOST}`, '/'],
  ['/a/%41b', '/a/%41b'],
]

const REFUSED = [
  '/a%2Fb', '/a%2fb', '/a%5Cb', '/a\\b', '/%2e%2e/x', '/x/%2E/y', '/x/.%2e/y', '/a%zz', '/a%', '/a%0a', '/a#frag',
  'http://other.example/x', 'admin', '*', 'ftp://x/', `http://${HOST}@evil/`,
]

it('leaves ordinary targets as they are', () => {
  for (const [input, out] of KEPT) assert.equal(normaliseTarget(input, HOST), out, input)
})

it('normalises absolute form, dot segments and runs of slashes', () => {
  for (const [input, out] of NORMALISED) assert.equal(normaliseTarget(input, HOST), out, input)
})

it('refuses targets whose path servers read differently', () => {
  for (const input of REFUSED) {
    assert.throws(() => normaliseTarget(input, HOST), { code: 'GW_ERR_REQUEST_TARGET_INVALID', status: 400 }, input)
  }
})

it('is idempotent: a normalised target normalises to itself', () => {
  for (const [, out] of [...KEPT, ...NORMALISED]) assert.equal(normaliseTarget(out, HOST), out, out)
})
