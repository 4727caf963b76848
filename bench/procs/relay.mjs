// A gw relay in its own process, started through the programmatic API, so that the
// harness can read its RSS apart from the agent's and ask it to collect garbage first.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { answerControl } from './control.mjs'

const stateDir = mkdtempSync(join(tmpdir(), 'gw-bench-relay-'))
let relay
try {
  // GW_BENCH_RELAY_DIST loads a patched copy made by bench/experiments/make-variant.mjs.
  const mod = await import(process.env.GW_BENCH_RELAY_DIST ? pathToFileURL(join(process.env.GW_BENCH_RELAY_DIST, 'index.js')).href : '@gw/relay')
  if (typeof mod.startRelay !== 'function') throw new Error('@gw/relay has no startRelay export yet')
  relay = await mod.startRelay({
    host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost',
    allowAnonymous: true, stateDir, log: () => {},
  })
} catch (err) {
  process.send?.({ type: 'unavailable', reason: String(err?.message ?? err).split('\n')[0] })
  rmSync(stateDir, { recursive: true, force: true })
  process.exit(0)
}
process.send?.({
  type: 'ready', httpPort: relay.httpPort, httpsPort: relay.httpsPort, httpUrl: relay.httpUrl, caCertPem: relay.caCertPem,
})
answerControl()
// The soak (bench/soak.mjs) checks that streams return to 0 once traffic stops.
process.on('message', (m) => {
  if (m?.type === 'streams') process.send?.({ type: 'streams', open: relay.openStreams() })
})
process.on('disconnect', async () => {
  await Promise.race([relay.close(), new Promise((r) => setTimeout(r, 2000))]).catch(() => {})
  rmSync(stateDir, { recursive: true, force: true })
  process.exit(0)
})
