/**
 * Crowds at the relay (issue 10): 1,000 slowloris connections while real clients keep
 * being served, and 2,000 WebSocket upgrades through one tunnel at once. Bounds on
 * correctness and on waiting, not on speed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { Agent as UndiciAgent, request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { startStack, waitFor } from '../helpers/stack.js'

describe('crowds at the relay', () => {
  it('1,000 slowloris connections are cut with 408 while real clients get 100%', async () => {
    const stack = await startStack((_req, res) => res.end('served'), { relay: { headersTimeout: 3000 } })
    const sockets: Socket[] = []
    const answers: string[] = []
    try {
      // Each sends a request line and a header, then one more header byte every 500 ms:
      // never a whole head.
      await Promise.all(Array.from({ length: 1000 }, (_, i) => new Promise<void>((resolve) => {
        const socket = connect(stack.relay.httpPort!, '127.0.0.1', () => {
          socket.write(`GET /slow${i} HTTP/1.1\r\nHost: ${stack.host}\r\nX-Slow: `)
          resolve()
        })
        let text = ''
        socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
        const drip = setInterval(() => socket.writable && socket.write('a'), 500)
        socket.on('close', () => { clearInterval(drip); answers.push(text) })
        socket.on('error', () => {})
        sockets.push(socket)
      })))
      // Real clients meanwhile, on their own connections.
      const client = new UndiciAgent({ connections: 10 })
      const statuses = await Promise.all(Array.from({ length: 200 }, async () => {
        const res = await request(`${stack.httpOrigin}/`, { headers: { host: stack.host }, dispatcher: client })
        const body = await res.body.text()
        return res.statusCode === 200 && body === 'served' ? 'ok' : `${res.statusCode} ${body}`
      }))
      await client.close()
      assert.deepEqual([...new Set(statuses)], ['ok'], 'every real client was served')
      // Each slow connection is cut once its head is late, with a 408 and the code.
      await waitFor(() => answers.length === 1000, 30_000, 'the relay to cut every slowloris connection')
      const with408 = answers.filter((t) => t.startsWith('HTTP/1.1 408') && /gw-error-code: GW_ERR_HEADERS_TIMEOUT/i.test(t)).length
      assert.equal(with408, 1000, `${1000 - with408} connections were cut without a 408`)
    } finally {
      for (const s of sockets) s.destroy()
      await stack.close()
    }
  })

  it('2,000 concurrent WebSocket upgrades through one tunnel all open and echo', async () => {
    const stack = await startStack((_req, res) => res.end('plain'))
    const wss = new WebSocketServer({ server: stack.upstream.server, perMessageDeflate: false })
    wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })))
    const clients: WebSocket[] = []
    try {
      const url = `${stack.httpOrigin.replace(/^http/, 'ws')}/ws`
      const results = await Promise.all(Array.from({ length: 2000 }, async (_, i) => {
        const ws = new WebSocket(url, { headers: { host: stack.host }, perMessageDeflate: false, handshakeTimeout: 60_000 })
        clients.push(ws)
        try {
          await once(ws, 'open')
          const echoed = once(ws, 'message')
          ws.send(`hello ${i}`)
          const [message] = await echoed
          return String(message) === `hello ${i}` ? 'echoed' : `wrong echo ${String(message)}`
        } catch (err) {
          return `failed ${(err as Error).message}`
        }
      }))
      const counts: Record<string, number> = {}
      for (const r of results) counts[r] = (counts[r] ?? 0) + 1
      assert.deepEqual(counts, { echoed: 2000 })
      assert.equal(wss.clients.size, 2000)
    } finally {
      for (const ws of clients) ws.terminate()
      await waitFor(() => stack.relay.openStreams() === 0, 30_000, 'every upgraded stream to close')
      wss.close()
      await stack.close()
    }
  })
})
