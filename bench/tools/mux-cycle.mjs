#!/usr/bin/env node
// The cost of gw's per-request machinery alone, in one process: N request/response cycles
// over two yamux sessions on a loopback socket pair, each as the relay and the agent do it
// (open a stream, head + END; the peer reads the head, answers head + 1 KiB DATA + END; the
// opener reads the response head and body). `concurrency` cycles run at once. Reports CPU µs per
// cycle (both sides together), with no HTTP on either end: what the tunnel adds per request.
//   node bench/tools/mux-cycle.mjs [cycles] [concurrency] [net|ws]
// `ws` carries the sessions over a ws WebSocket pair, as gw does; `net` over the bare sockets.
import net from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import {
  Session,
  createWebSocketTransport,
  DISCARD_BODY,
  MessageReader,
  MessageWriter,
} from '@gw/protocol'

const [cyclesArg = '200000', concurrencyArg = '64', kind = 'net'] = process.argv.slice(2)
const cycles = Number(cyclesArg)
const concurrency = Number(concurrencyArg)
let relay, agent, close
if (kind === 'ws') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await new Promise((r) => wss.once('listening', r))
  const accepted = new Promise((r) => wss.once('connection', r))
  const client = new WebSocket(`ws://127.0.0.1:${wss.address().port}`, { perMessageDeflate: false })
  await new Promise((r) => client.once('open', r))
  relay = new Session(createWebSocketTransport(await accepted), { client: false, keepAliveInterval: 0 })
  agent = new Session(createWebSocketTransport(client), { client: true, keepAliveInterval: 0 })
  close = () => wss.close()
} else {
  const server = net.createServer()
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const accepted = new Promise((r) => server.once('connection', r))
  const clientSocket = net.connect(server.address().port, '127.0.0.1')
  await new Promise((r) => clientSocket.once('connect', r))
  const serverSocket = await accepted
  clientSocket.setNoDelay(true)
  serverSocket.setNoDelay(true)
  relay = new Session(serverSocket, { client: false, keepAliveInterval: 0 })
  agent = new Session(clientSocket, { client: true, keepAliveInterval: 0 })
  close = () => server.close()
}

const REQUEST = { method: 'GET', target: '/small', httpVersion: '1.1', rawHeaders: ['Host', 'bench.localhost', 'User-Agent', 'autocannon', 'X-Forwarded-For', '127.0.0.1', 'X-Forwarded-Proto', 'http', 'X-Forwarded-Host', 'bench.localhost'], remoteAddress: '127.0.0.1', remotePort: 5555, scheme: 'http', tunnel: 'bench', receivedAt: 0, upgrade: false, expectContinue: false, hasBody: false }
const BODY = Buffer.alloc(1024, 'a')

// Agent side: read the head, discard the empty body, answer.
agent.on('stream', (stream) => {
  const reader = new MessageReader(stream)
  reader.nextMessage((err, message) => {
    if (err || !message) return stream.destroy()
    JSON.parse(message.payload.toString())
    reader.bodyTo(DISCARD_BODY).resume()
    const out = new MessageWriter(stream)
    out.responseHead({ status: 200, rawHeaders: ['Content-Type', 'text/plain', 'Content-Length', '1024', 'Date', new Date().toUTCString()] })
    out.data(BODY)
    out.end()
  })
})

// Relay side: open, send head + END, read the response to its end.
function cycle() {
  return new Promise((resolve, reject) => {
    const stream = relay.open()
    const reader = new MessageReader(stream)
    new MessageWriter(stream).requestWithoutBody({ ...REQUEST, receivedAt: Date.now() })
    reader.nextMessage((err, message) => {
      if (err || !message) return reject(err ?? new Error('no response'))
      JSON.parse(message.payload.toString())
      let bytes = 0
      reader.bodyTo({ data: (c) => { bytes += c.length; return true }, end: () => (bytes === 1024 ? resolve() : reject(new Error(`${bytes} bytes`))), error: reject }).resume()
    })
  })
}

async function worker(n) { for (let i = 0; i < n; i++) await cycle() }
await Promise.all(Array.from({ length: concurrency }, () => worker(2000 / concurrency))) // warm up
const cpu0 = process.cpuUsage()
const t0 = performance.now()
await Promise.all(Array.from({ length: concurrency }, () => worker(cycles / concurrency)))
const cpu = process.cpuUsage(cpu0)
const ms = performance.now() - t0
console.log(`${cycles} cycles, ${concurrency} at once: ${((cpu.user + cpu.system) / cycles).toFixed(1)} µs CPU per cycle (user ${(cpu.user / cycles).toFixed(1)}, system ${(cpu.system / cycles).toFixed(1)}), ${Math.round(cycles / (ms / 1000))} cycles/s`)
relay.close(); agent.close(); close()
