/**
 * `Expect: 100-continue` with a body that never comes: the client half-closes before
 * or after the 100, or after part of the body. Each exchange must end with a 400 and
 * leave the relay holding no stream (an earlier build was seen keeping the stream
 * open when a HEAD with a Content-Length half-closed). A client that sends nothing
 * and stays connected is bounded by the relay's request timeout, not here: undici
 * writes the upstream's request head with the first body byte, so no one else is
 * waiting on it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { startStack, waitFor, type Stack } from '../helpers/stack.js'

/** Send `text`, half-close after `endAfterMs`, collect until the relay closes. */
function exchange(port: number, text: string, endAfterMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(text)
      setTimeout(() => socket.end(), endAfterMs)
    })
    let out = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (out += d))
    socket.on('error', () => {})
    socket.on('close', () => resolve(out))
  })
}

function finalStatus(out: string): number {
  const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))
  return statuses.filter((s) => s >= 200).at(0) ?? 0
}

async function settled(stack: Stack, what: string): Promise<void> {
  await waitFor(() => stack.relay.openStreams() === 0, 10_000, `${what}: the relay to hold no stream`)
}

test('Expect: 100-continue whose body never comes ends every exchange and leaks no stream', async () => {
  const stack = await startStack((req, res) => {
    req.resume()
    req.on('end', () => res.end('ok'))
  })
  try {
    const port = Number(new URL(stack.httpOrigin).port)
    for (const method of ['HEAD', 'POST', 'PUT', 'GET']) {
      const head = `${method} / HTTP/1.1\r\nHost: ${stack.host}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`
      for (const endAfterMs of [0, 300]) {
        const out = await exchange(port, head, endAfterMs)
        assert.equal(finalStatus(out), 400, `${method}, half-close after ${endAfterMs} ms: ${JSON.stringify(out.slice(0, 120))}`)
        assert.match(out, /gw-error-code: GW_ERR_BAD_REQUEST/)
        await settled(stack, `${method} half-closed after ${endAfterMs} ms`)
      }
      // Part of the promised body, then the half-close.
      const partial = await exchange(port, `${head}ab`, 300)
      assert.equal(finalStatus(partial), 400, `${method}, 2 of 5 bytes: ${JSON.stringify(partial.slice(0, 120))}`)
      await settled(stack, `${method} with 2 of 5 bytes`)
    }
    assert.equal((await fetch(`${stack.httpOrigin}/`, { headers: { host: stack.host } })).status, 200, 'the tunnel still serves')
  } finally {
    await stack.close()
  }
})
