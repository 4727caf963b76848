/**
 * A bounded run of the policy fuzz targets (policy-fuzz-properties.ts) in every
 * `npm test`; `npm run fuzz` runs 10^6 cases of each.
 */
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { POLICY_TARGETS } from './policy-fuzz-properties.js'

describe('fuzzing the traffic policy (bounded)', () => {
  for (const [name, property] of Object.entries(POLICY_TARGETS)) {
    it(`${name}: any input compiles or is refused with a coded one-line error; a compiled policy answers or fails coded`, async () => {
      await fc.assert(property, { numRuns: 3_000, includeErrorInReport: true, seed: Number(process.env.GW_FUZZ_SEED ?? 20261202) })
    })
  }
})
