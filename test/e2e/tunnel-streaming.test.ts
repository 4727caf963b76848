import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { request as httpRequest, Agent as HttpAgent } from 'node:http'
import { WebSocket, WebSocketServer } from 'ws'
import { startStack, waitFor, type Stack } from '../helpers/stack.js'

describe('streaming through the tunnel', () => {
  let stack: Stack
  let wss: WebSocketServer
  /** Resolvers the SSE test uses to release the next event. */
  const sseGate: Array<() => void> = []
  let abortedAtUpstream = 0

  before(async () => {
    stack = await startStack((req, res) => {
      const url = new URL(req.url!, 'http://x')
      if (url.pathname === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        let n = 0
        const next = (): void => {
          n++
          res.write(`id: ${n}\ndata: event ${n}\n\n`)
          if (n === 5) return void res.end()
          sseGate.push(next)
        }
        next()
        return
      }
      if (url.pathname === '/endless') {
        // A download that never ends: a chunk now, then one every 20 ms.
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const chunk = Buffer.alloc(4 * 1024, 1)
        res.write(chunk)
        const timer = setInterval(() => res.write(chunk), 20)
        res.on('close', () => {
          clearInterval(timer)
          if (!res.writableFinished) abortedAtUpstream++
        })
        return
      }
      res.end('ok')
    })
    wss = new WebSocketServer({ server: stack.upstream.server, perMessageDeflate: false })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
  })

  after(async () => {
    wss.close()
    await stack.close()
  })

  it('echoes 10,000 WebSocket messages in order', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${stack.relay.httpPort}/socket`, { headers: { host: stack.host }, perMessageDeflate: false })
    await once(ws, 'open')
    const received: string[] = []
    const done = new Promise<void>((resolve) => {
      ws.on('message', (data) => {
        received.push(data.toString())
        if (received.length === 10_000) resolve()
      })
    })
    for (let i = 0; i < 10_000; i++) ws.send(`message ${i}`)
    await done
    assert.equal(received.length, 10_000)
    for (let i = 0; i < 10_000; i += 997) assert.equal(received[i], `message ${i}`)
    ws.close()
    await once(ws, 'close')
  })

  it('delivers Server-Sent Events one by one, without buffering', async () => {
    const req = httpRequest({ host: '127.0.0.1', port: stack.relay.httpPort, path: '/events', headers: { host: stack.host } })
    req.end()
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
    assert.equal(res.headers['content-type'], 'text/event-stream')
    res.setEncoding('utf8')
    let buffer = ''
    const events: string[] = []
    for await (const chunk of res) {
      buffer += chunk as string
      let cut: number
      while ((cut = buffer.indexOf('\n\n')) !== -1) {
        events.push(buffer.slice(0, cut))
        buffer = buffer.slice(cut + 2)
        // The upstream sends the next event only after this one arrived here: with any
        // buffering on the way, this loop would wait forever.
        sseGate.shift()?.()
      }
    }
    assert.deepEqual(events.map((e) => e.split('\n')[1]), ['data: event 1', 'data: event 2', 'data: event 3', 'data: event 4', 'data: event 5'])
  })

  it('propagates a client abort to the upstream and leaves no stream open after 10,000 aborts', async () => {
    const agent = new HttpAgent({ keepAlive: false, maxSockets: 100 })
    const one = (): Promise<void> =>
      new Promise((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port: stack.relay.httpPort, path: '/endless', headers: { host: stack.host }, agent })
        req.on('response', (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        })
        req.on('error', () => resolve())
        req.end()
      })
    const total = 10_000
    let started = 0
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (started < total) {
          started++
          await one()
        }
      }),
    )
    agent.destroy()
    await waitFor(() => stack.relay.openStreams() === 0 && stack.agent.openStreams() === 0, 20_000, 'all streams to close')
    await waitFor(() => abortedAtUpstream === total, 20_000, `the upstream to see ${total} aborts (saw ${abortedAtUpstream})`)
    assert.equal(stack.relay.openStreams(), 0)
    assert.equal(stack.agent.openStreams(), 0)
  })
})
