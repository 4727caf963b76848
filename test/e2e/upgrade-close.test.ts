/**
 * The end of an upgraded connection: whatever the upstream wrote before it closed
 * reaches the client, and the client's socket is ended by the relay.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { createHash } from 'node:crypto'
import { startStack, waitFor, type Stack } from '../helpers/stack.js'

const PAYLOAD = Buffer.alloc(4 * 1024 * 1024)
for (let i = 0; i < PAYLOAD.length; i += 4) PAYLOAD.writeUInt32BE(i, i)
const DIGEST = createHash('sha256').update(PAYLOAD).digest('hex')

describe('closing an upgraded connection', () => {
  let stack: Stack

  before(async () => {
    stack = await startStack((_req, res) => res.end('no upgrade here'))
    // The upstream switches protocols, writes 4 MiB at once and closes at once: more than
    // any stream window, so most of it is still queued in the agent when the upstream's
    // socket closes.
    stack.upstream.server.on('upgrade', (_req, socket: Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n')
      socket.end(PAYLOAD)
    })
  })
  after(() => stack.close())

  it('delivers every byte the upstream wrote before it closed, to 8 slow readers at once', async () => {
    const one = (): Promise<{ digest: string; fin: boolean }> =>
      new Promise((resolve, reject) => {
        const socket = connect(stack.relay.httpPort!, '127.0.0.1')
        const chunks: Buffer[] = []
        let fin = false
        socket.write(`GET /raw HTTP/1.1\r\nHost: ${stack.host}\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n`)
        // Read nothing for a while, so the relay's and the agent's windows fill up.
        socket.pause()
        setTimeout(() => socket.resume(), 300)
        socket.on('data', (c: Buffer) => chunks.push(c))
        socket.on('end', () => { fin = true })
        socket.on('error', reject)
        socket.on('close', () => {
          const all = Buffer.concat(chunks)
          const cut = all.indexOf('\r\n\r\n')
          assert.match(all.subarray(0, cut).toString('latin1'), /^HTTP\/1\.1 101 /)
          resolve({ digest: createHash('sha256').update(all.subarray(cut + 4)).digest('hex'), fin })
        })
      })
    const results = await Promise.all(Array.from({ length: 8 }, one))
    assert.deepEqual(results.map((r) => r.digest), Array(8).fill(DIGEST), 'every client got the whole payload')
    assert.deepEqual(results.map((r) => r.fin), Array(8).fill(true), 'every client socket was ended by the relay')
    await waitFor(() => stack.relay.openStreams() === 0 && stack.agent.openStreams() === 0, 10_000, 'all streams to close')
  })
})
