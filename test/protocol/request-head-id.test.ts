import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checkRequestHead, type RequestHead } from '@gw/protocol'

const head: RequestHead = {
  method: 'GET', target: '/', httpVersion: '1.1', rawHeaders: ['Host', 'a.localhost'], remoteAddress: '127.0.0.1', remotePort: 1,
  scheme: 'http', tunnel: 'a', receivedAt: 1, upgrade: false, expectContinue: false, hasBody: false,
}

describe('request head: the relay\'s request id', () => {
  it('is optional, and kept when it is letters, digits, _ and - up to 64', () => {
    assert.equal(checkRequestHead({ ...head }).requestId, undefined)
    assert.equal(checkRequestHead({ ...head, requestId: 'req_0a1b2c3d00000z' }).requestId, 'req_0a1b2c3d00000z')
    assert.equal(checkRequestHead({ ...head, requestId: 'x'.repeat(64) }).requestId, 'x'.repeat(64))
  })
  it('refuses any other shape: the inspector puts it in URLs', () => {
    for (const requestId of ['', 'x'.repeat(65), 'a/b', 'a b', '../x', 7, null]) {
      assert.throws(() => checkRequestHead({ ...head, requestId }), { code: 'GW_ERR_MESSAGE_MALFORMED' }, String(requestId))
    }
  })
})
