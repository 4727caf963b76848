/**
 * An HTTP/1 connection whose request line says HTTP/2.0 is still an HTTP/1 connection.
 * Found by `npm run fuzz` (the relay's HTTP front, 10⁶ connections): a pipelined request
 * saying HTTP/2.0, with a chunked body the client never finished (it half-closed) and a
 * target the agent refuses at once, waited its turn behind the first response; its
 * connection died meanwhile, and the relay kept the request's stream to the agent open for
 * ever, because it watched the socket only for requests whose version said 1.x.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { startStack, waitFor } from '../helpers/stack.js'

function send(port: number, bytes: string, cut: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(bytes.slice(0, cut))
      socket.end(bytes.slice(cut))
    })
    let out = ''
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => resolve(out))
  })
}

test('a pipelined HTTP/2.0 request line with an unfinished chunked body and a refused target leaves no stream open after its connection closes', async () => {
  const stack = await startStack((req, res) => {
    req.resume()
    req.on('end', () => res.end('upstream'))
  })
  try {
    const port = Number(new URL(stack.httpOrigin).port)
    const bytes = `OPTIONS /_?.&9 HTTP/1.1\r\nHost: ${stack.host}\r\n\r\n` +
      `GET /g--.&%# HTTP/2.0\r\nHost: ${stack.host}\r\nTransfer-Encoding: chunked\r\n\r\n`
    for (let i = 0; i < 5; i++) {
      const out = await send(port, bytes, 64)
      assert.match(out, /^HTTP\/1\.1 200 /, 'the first request is answered')
    }
    // Failed before the fix: one stream per connection stayed open.
    await waitFor(() => stack.relay.openStreams() === 0, 10_000, `the relay to release its streams (holds ${stack.relay.openStreams()})`)
    const health = await fetch(`${stack.httpOrigin}/healthz`)
    assert.equal(health.status, 200)
  } finally {
    await stack.close()
  }
})
