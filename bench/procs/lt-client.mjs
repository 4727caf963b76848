// The localtunnel npm client in its own process, as a user would run `lt`.
// argv: <serverUrl> <upstreamPort> <subdomain>
import localtunnel from 'localtunnel'
import { answerControl } from './control.mjs'

const [host, port, subdomain] = process.argv.slice(2)
try {
  const tunnel = await localtunnel({ port: Number(port), local_host: '127.0.0.1', host, subdomain })
  tunnel.on('error', () => {})
  process.send?.({ type: 'ready', url: tunnel.url })
  process.on('disconnect', () => { tunnel.close(); process.exit(0) })
} catch (err) {
  process.send?.({ type: 'unavailable', reason: String(err?.message ?? err) })
  process.exit(0)
}
answerControl()
