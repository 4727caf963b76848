// The soak's upstream: the mixed traffic of bench/soak.mjs needs more shapes than
// procs/upstream.mjs has, so this one adds a WebSocket echo and an SSE stream.
//   GET  /small          1 KiB
//   GET  /bulk?bytes=N   N bytes, written with backpressure
//   POST /upload         counts the body, answers {"bytes":N}
//   GET  /sse?events=N   N server-sent events 5 ms apart, then the end
//   GET  /slow           1 KiB after 2 s (the soak aborts these mid-flight)
//   Upgrade: websocket   echo every message
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'
import { answerControl } from './control.mjs'

const SMALL = Buffer.alloc(1024, 'a')
const CHUNK = Buffer.alloc(64 * 1024, 'b')

const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, (req, res) => {
  const url = new URL(req.url ?? '/', 'http://upstream')
  switch (url.pathname) {
    case '/small':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1024' })
      return void res.end(SMALL)
    case '/bulk': {
      let left = Number(url.searchParams.get('bytes') ?? 0)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) })
      const pump = () => {
        while (left > 0) {
          const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left)
          left -= piece.length
          if (!res.write(piece)) return void res.once('drain', pump)
        }
        res.end()
      }
      res.on('close', () => { left = 0 })
      return pump()
    }
    case '/upload': {
      let bytes = 0
      req.on('data', (c) => { bytes += c.length })
      req.on('end', () => {
        const body = JSON.stringify({ bytes })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) })
        res.end(body)
      })
      return
    }
    case '/sse': {
      let left = Number(url.searchParams.get('events') ?? 10)
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
      const timer = setInterval(() => {
        res.write(`data: ${left}\n\n`)
        if (--left <= 0) {
          clearInterval(timer)
          res.end()
        }
      }, 5)
      res.on('close', () => clearInterval(timer))
      return
    }
    case '/slow': {
      const timer = setTimeout(() => {
        res.writeHead(200, { 'content-length': '1024' })
        res.end(SMALL)
      }, 2000)
      res.on('close', () => clearTimeout(timer))
      return
    }
    default:
      res.writeHead(404, { 'content-length': '0' })
      res.end()
  }
})
const wss = new WebSocketServer({ server, perMessageDeflate: false })
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  ws.on('error', () => {})
})
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  process.send?.({ type: 'ready', port: server.address().port })
})
answerControl()
process.on('disconnect', () => process.exit(0))
