// A relay and an agent in one process (argv: <upstreamUrl>): the same code as the gw-http
// path without the second process, so bench/tools/proxy-floor.mjs can tell what the
// process boundary costs from what gw's own work costs.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay } from '@gw/relay'
import { startAgent } from '@gw/cli/agent/agent'
import { answerControl } from './control.mjs'

const [upstream] = process.argv.slice(2)
const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', allowAnonymous: true, stateDir: mkdtempSync(join(tmpdir(), 'gw-bench-one-')), log: () => {} })
const agent = await startAgent({ relay: relay.httpUrl, endpoints: [{ name: 'one', publicName: 'one', upstream }] })
process.send?.({ type: 'ready', port: relay.httpPort })
answerControl()
process.on('disconnect', async () => {
  await Promise.race([Promise.all([agent.close(), relay.close()]), new Promise((r) => setTimeout(r, 2000))]).catch(() => {})
  process.exit(0)
})
