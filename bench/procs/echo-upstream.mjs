// The TCP upstream of scenario 10 (and of tools/cluster-tcp.mjs): an echo server that
// writes back every byte it reads and half-closes when the client does, in its own
// process so its CPU is not the load generator's. Answers {type:'ready', port}.
import { createServer } from 'node:net'
import { answerControl } from './control.mjs'

const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  socket.on('error', () => {})
  socket.pipe(socket)
})
server.maxConnections = Infinity
server.listen({ port: 0, host: '127.0.0.1', backlog: 16384 }, () => {
  process.send?.({ type: 'ready', port: server.address().port })
})
answerControl()
process.on('disconnect', () => process.exit(0))
