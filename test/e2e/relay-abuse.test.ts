/**
 * Abuse at the relay's public front, with a raw socket so that the bytes are exactly the
 * attack's: request smuggling shapes and Host headers the relay cannot read one way are
 * refused with 400 and a code, and never reach the upstream.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rawExchange, statuses } from '../helpers/raw-client.js'
import { startStack, type Stack } from '../helpers/stack.js'

describe('abuse at the relay', () => {
  let stack: Stack
  let seen = 0

  before(async () => {
    stack = await startStack((req, res) => {
      seen++
      req.resume()
      req.on('end', () => res.end('upstream answered'))
    })
  })
  after(() => stack.close())

  const refused = async (what: string, bytes: string): Promise<void> => {
    const before = seen
    const { text } = await rawExchange(stack.relay.httpPort!, bytes, 800)
    assert.equal(statuses(text)[0], 400, `${what}: expected 400, got:\n${text}`)
    assert.match(text, /gw-error-code: GW_ERR_BAD_REQUEST/i, what)
    assert.doesNotMatch(text, /upstream answered/, what)
    assert.equal(seen, before, `${what}: the upstream saw the request`)
  }

  it('refuses smuggling shapes with 400 and forwards none of them', async () => {
    const h = stack.host
    const shapes: Array<[string, string]> = [
      ['CL + TE', `POST / HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${h}\r\n\r\n`],
      ['two Content-Length', `POST / HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd`],
      ['chunked, identity', `POST / HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
      ['obs-fold', `GET / HTTP/1.1\r\nHost: ${h}\r\nX-Folded: a\r\n b\r\n\r\n`],
      ['bare LF', `GET / HTTP/1.1\nHost: ${h}\nX-A: b\n\n`],
      ['NUL in a header', `GET / HTTP/1.1\r\nHost: ${h}\r\nX-A: a\u0000b\r\n\r\n`],
      ['space before the colon', `GET / HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`],
    ]
    for (const [what, bytes] of shapes) await refused(what, bytes)
  })

  it('refuses a Host it cannot read one way', async () => {
    const h = stack.host
    await refused('two Host headers', `GET / HTTP/1.1\r\nHost: ${h}\r\nHost: other.localhost\r\n\r\n`)
    await refused('a non-numeric port', `GET / HTTP/1.1\r\nHost: ${h}:abc\r\n\r\n`)
    await refused('a port out of range', `GET / HTTP/1.1\r\nHost: ${h}:99999\r\n\r\n`)
    await refused('an underscore', `GET / HTTP/1.1\r\nHost: a_b.localhost\r\n\r\n`)
    await refused('a userinfo', `GET / HTTP/1.1\r\nHost: x@${h}\r\n\r\n`)
    await refused('an upgrade with two Host headers', `GET / HTTP/1.1\r\nHost: ${h}\r\nHost: other.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`)
  })

  it('still routes a Host in any case, with its port', async () => {
    const before = seen
    const { text } = await rawExchange(stack.relay.httpPort!, `GET / HTTP/1.1\r\nHost: ${stack.host.toUpperCase()}:${stack.relay.httpPort}\r\nConnection: close\r\n\r\n`)
    assert.deepEqual(statuses(text), [200])
    assert.match(text, /upstream answered/)
    assert.equal(seen, before + 1)
  })
})
