#!/usr/bin/env node
// `npm run fuzz [-- --runs N]`: each fuzz target of test/protocol/fuzz-properties.ts for
// N cases (default 10^6), after a build. Prints cases, failures and time per target.
import fc from 'fast-check'

const args = process.argv.slice(2)
const at = args.indexOf('--runs')
const runs = at === -1 ? 1_000_000 : Number(args[at + 1])
const { TARGETS } = await import('../test/dist/protocol/fuzz-properties.js')
let failed = false
for (const [name, property] of Object.entries(TARGETS)) {
  const t0 = performance.now()
  const result = fc.check(property, { numRuns: runs })
  const s = ((performance.now() - t0) / 1000).toFixed(1)
  if (result.failed) {
    failed = true
    console.log(`${name}: FAILED after ${result.numRuns} cases (${s} s), seed ${result.seed}, counterexample ${JSON.stringify(result.counterexample)}`)
    console.log(String(result.errorInstance))
  } else {
    console.log(`${name}: ${result.numRuns} cases, 0 failures, ${s} s`)
  }
}
process.exit(failed ? 1 : 0)
