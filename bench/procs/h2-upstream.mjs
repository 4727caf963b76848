// The HTTP/2 upstream of scenario 9: one node:http2 process with two listeners that give
// the same answer as procs/upstream.mjs's `/small` (1 KiB, 200):
//   tls   h2 over TLS by ALPN (the per-run certificate from lib/certs.mjs): what the
//         direct-h2 row and ssh -R's h2 row reach
//   h2c   HTTP/2 with prior knowledge, no TLS: what `gw http --upstream-protocol http2`
//         speaks to an http:// upstream (the gRPC shape)
// Args: <certFile> <keyFile>. Answers {type:'ready', tlsPort, h2cPort}.
import { readFileSync } from 'node:fs'
import { createSecureServer, createServer } from 'node:http2'
import { answerControl } from './control.mjs'

const SMALL = Buffer.alloc(1024, 'a')
const [certFile, keyFile] = process.argv.slice(2)

function answer(stream, headers) {
  if (headers[':path'] !== '/small') {
    stream.respond({ ':status': 404, 'content-length': '0' }, { endStream: true })
    return
  }
  stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': '1024' })
  stream.end(SMALL)
}

const settings = { maxConcurrentStreams: 1000 }
const tls = createSecureServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), settings, allowHTTP1: false })
const h2c = createServer({ settings })
for (const s of [tls, h2c]) {
  s.on('stream', (stream, headers) => { stream.on('error', () => {}); answer(stream, headers) })
  s.on('sessionError', () => {})
  s.setTimeout(0)
}
const listen = (s) => new Promise((resolve) => s.listen({ port: 0, host: '127.0.0.1', backlog: 16384 }, () => resolve(s.address().port)))
const [tlsPort, h2cPort] = await Promise.all([listen(tls), listen(h2c)])
process.send?.({ type: 'ready', tlsPort, h2cPort })
answerControl()
process.on('disconnect', () => process.exit(0))
