// The least a Node hop can cost: a plain node:http server that forwards each request to
// the upstream with undici's dispatch and streams the answer back. No multiplexing, no
// second process, no policy. bench/tools/proxy-floor.mjs sets it beside gw.
//   argv: <upstreamUrl>
import { createServer } from 'node:http'
import { Agent } from 'undici'
import { answerControl } from './control.mjs'

const [upstream] = process.argv.slice(2)
const dispatcher = new Agent()
const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  dispatcher.dispatch({ origin: upstream, path: req.url, method: req.method, headers: req.rawHeaders, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, {
    onConnect() {},
    onHeaders(status, rawHeaders, resume) {
      const headers = []
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = rawHeaders[i].toString('latin1')
        if (name.toLowerCase() !== 'connection' && name.toLowerCase() !== 'keep-alive') headers.push(name, rawHeaders[i + 1].toString('latin1'))
      }
      res.writeHead(status, headers)
      res.on('drain', resume)
      return true
    },
    onData(chunk) { return res.write(chunk) },
    onComplete() { res.end() },
    onError(err) { if (!res.headersSent) { res.writeHead(502); res.end(String(err)) } else res.destroy(err) },
  })
})
server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: server.address().port })
  answerControl()
})
process.on('disconnect', () => process.exit(0))
