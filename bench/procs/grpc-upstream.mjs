// The gRPC upstream of scenario 11: a grpc-js server (gwbench.Echo/Say answers with `size`
// bytes and the request's message) on two ports: TLS (the per-run certificate of
// lib/certs.mjs), which direct-grpc and ssh -R reach, and h2c, which `gw http
// --upstream-protocol http2` and nginx's grpc_pass reach. Args: <certFile> <keyFile>.
// Answers {type:'ready', tlsPort, h2cPort}.
import { readFileSync } from 'node:fs'
import { echoService, grpc } from '../lib/grpc-proto.mjs'
import { answerControl } from './control.mjs'

const [certFile, keyFile] = process.argv.slice(2)
const Echo = echoService()
const payloads = new Map()
const payload = (n) => {
  let p = payloads.get(n)
  if (!p) payloads.set(n, (p = Buffer.alloc(n, 'a')))
  return p
}
const server = new grpc.Server()
server.addService(Echo.service, {
  Say: (call, cb) => cb(null, { message: call.request.message, payload: payload(call.request.size) }),
})
const bind = (creds) => new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))))
const tlsPort = await bind(grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(certFile), private_key: readFileSync(keyFile) }], false))
const h2cPort = await bind(grpc.ServerCredentials.createInsecure())
process.send?.({ type: 'ready', tlsPort, h2cPort })
answerControl()
process.on('disconnect', () => process.exit(0))
