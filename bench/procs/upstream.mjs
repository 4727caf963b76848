// The one upstream every path reaches: a plain Node HTTP server with fixed responses, in
// its own process so its CPU is not shared with the load generator's event loop.
//   GET  /small          1 KiB body
//   GET  /delay?ms=N     1 KiB body after N ms (scenario 4)
//   GET  /bulk?bytes=N   N bytes, written with backpressure (scenarios 3 and 6)
//   POST /upload         reads the body, answers {"bytes":N}
import { createServer } from 'node:http'
import { answerControl } from './control.mjs'

const SMALL = Buffer.alloc(1024, 'a')
const CHUNK = Buffer.alloc(64 * 1024, 'b')

function writeBulk(res, total) {
  let left = total
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) })
  const pump = () => {
    while (left > 0) {
      const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left)
      left -= piece.length
      if (!res.write(piece)) return void res.once('drain', pump)
    }
    res.end()
  }
  res.on('close', () => { left = 0 })
  pump()
}

const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
  const url = new URL(req.url ?? '/', 'http://upstream')
  switch (url.pathname) {
    case '/small':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1024' })
      res.end(SMALL)
      return
    case '/delay': {
      const ms = Number(url.searchParams.get('ms') ?? 1000)
      const timer = setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1024' })
        res.end(SMALL)
      }, ms)
      res.on('close', () => clearTimeout(timer))
      return
    }
    case '/bulk':
      writeBulk(res, Number(url.searchParams.get('bytes') ?? 0))
      return
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
    default:
      res.writeHead(404, { 'content-length': '0' })
      res.end()
  }
})
server.maxConnections = Infinity
server.listen({ port: 0, host: '127.0.0.1', backlog: 16384 }, () => {
  process.send?.({ type: 'ready', port: server.address().port })
})
answerControl()
process.on('disconnect', () => process.exit(0))
