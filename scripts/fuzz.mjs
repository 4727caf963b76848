#!/usr/bin/env node
// `npm run fuzz [-- --runs N] [-- --only NAME]`: every fuzz target for N cases (default
// 10^6), after a build. Prints cases, failures and time per target.
//   - peer input to the protocol: test/protocol/fuzz-properties.ts
//   - the traffic policy's loader, evaluator and CEL: test/policy/policy-fuzz-properties.ts
//   - the relay's HTTP front, raw bytes on real sockets: test/e2e/relay-front-fuzz-properties.ts
//     (each property run sends a batch of connections at once; N counts connections)
import fc from 'fast-check'

const args = process.argv.slice(2)
const flag = (name) => (args.indexOf(name) === -1 ? undefined : args[args.indexOf(name) + 1])
const runs = Number(flag('--runs') ?? 1_000_000)
const only = flag('--only')
const { TARGETS } = await import('../test/dist/protocol/fuzz-properties.js')
const { POLICY_TARGETS } = await import('../test/dist/policy/policy-fuzz-properties.js')
const { startFrontFuzz } = await import('../test/dist/e2e/relay-front-fuzz-properties.js')

let failed = false
async function check(name, property, numRuns, unit = 'cases', perRun = 1) {
  if (only && !name.includes(only)) return
  const t0 = performance.now()
  const result = await fc.check(property, { numRuns, includeErrorInReport: true })
  const s = ((performance.now() - t0) / 1000).toFixed(1)
  const done = result.numRuns * perRun
  if (result.failed) {
    failed = true
    console.log(`${name}: FAILED after ${done} ${unit} (${s} s), seed ${result.seed}, counterexample ${JSON.stringify(result.counterexample)?.slice(0, 2000)}`)
    console.log(String(result.errorInstance))
  } else {
    console.log(`${name}: ${done} ${unit}, 0 failures, ${s} s`)
  }
}

for (const [name, property] of Object.entries({ ...TARGETS, ...POLICY_TARGETS })) await check(name, property, runs)

if (!only || 'relay HTTP front'.includes(only)) {
  const front = await startFrontFuzz()
  try {
    await check('relay HTTP front', front.property, Math.ceil(runs / front.perRun), 'connections', front.perRun)
    await front.settle()
    const statuses = [...front.stats.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')
    console.log(`  reached the upstream ${front.stats.upstreamRequests} times; answers: ${statuses}; afterwards 0 streams held, /healthz 200`)
  } catch (err) {
    failed = true
    console.log(`relay HTTP front: after the run: ${err.message}`)
  } finally {
    await front.close()
  }
}
process.exit(failed ? 1 : 0)
