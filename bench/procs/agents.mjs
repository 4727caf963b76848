// One or many gw agents in one process, started through the programmatic API.
// argv: <relayHttpUrl> <upstreamUrl> <namePrefix> <count> [caFile]
// With count 1 the endpoint is named exactly <namePrefix>; with more, <namePrefix>-<i>.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { answerControl } from './control.mjs'

const [relayUrl, upstream, prefix, countArg, caFile] = process.argv.slice(2)
const count = Number(countArg ?? 1)
const relayCa = caFile ? readFileSync(caFile, 'utf8') : undefined
const agents = []
try {
  // GW_BENCH_AGENT_DIST loads a patched copy made by bench/experiments/make-variant.mjs.
  const mod = await import(process.env.GW_BENCH_AGENT_DIST ? pathToFileURL(join(process.env.GW_BENCH_AGENT_DIST, 'agent/agent.js')).href : '@gw/cli/agent/agent')
  if (typeof mod.startAgent !== 'function') throw new Error('@gw/cli/agent/agent has no startAgent export yet')
  // GW_BENCH_POLICY: a traffic-policy file every endpoint gets (tools/ab.mjs --policy).
  let policy
  if (process.env.GW_BENCH_POLICY) {
    const policyMod = await import(process.env.GW_BENCH_AGENT_DIST ? pathToFileURL(join(process.env.GW_BENCH_AGENT_DIST, 'policy/index.js')).href : '@gw/cli/policy/index')
    policy = policyMod.loadPolicyFile(process.env.GW_BENCH_POLICY)
  }
  // Connect in small batches: a thousand handshakes at once measure the relay's accept
  // queue, not its idle cost.
  for (let i = 0; i < count; i += 50) {
    const batch = []
    for (let j = i; j < Math.min(count, i + 50); j++) {
      const name = count === 1 ? prefix : `${prefix}-${j}`
      // `publicName` is the name asked of the relay; `name` is the agent's own label for it.
      batch.push(mod.startAgent({ relay: relayUrl, endpoints: [{ name, publicName: name, upstream, ...(policy ? { policy } : {}) }], relayCa }))
    }
    agents.push(...(await Promise.all(batch)))
  }
} catch (err) {
  process.send?.({ type: 'unavailable', reason: String(err?.message ?? err).split('\n')[0] })
  process.exit(0)
}
process.send?.({ type: 'ready', count: agents.length, urls: agents[0]?.tunnels?.[0]?.publicUrls ?? [] })
answerControl()
// The soak (bench/soak.mjs) checks that streams return to 0 once traffic stops.
process.on('message', (m) => {
  if (m?.type === 'streams') process.send?.({ type: 'streams', open: agents.reduce((n, a) => n + a.openStreams(), 0) })
})
process.on('disconnect', async () => {
  await Promise.race([Promise.all(agents.map((a) => a.close())), new Promise((r) => setTimeout(r, 2000))]).catch(() => {})
  process.exit(0)
})
