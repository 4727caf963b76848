/**
 * A bounded run of the fuzz targets (fuzz-properties.ts) in every `npm test`;
 * `npm run fuzz` runs 10^6 cases of each.
 */
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { TARGETS } from './fuzz-properties.js'

describe('fuzzing peer input (bounded)', () => {
  for (const [name, property] of Object.entries(TARGETS)) {
    it(`${name}: any input decodes or fails with a coded error, the same however chunked`, () => {
      fc.assert(property, { numRuns: 5_000 })
    })
  }
})
