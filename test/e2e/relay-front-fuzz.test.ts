/**
 * A bounded run of the relay-front fuzz target (relay-front-fuzz-properties.ts) in every
 * `npm test`; `npm run fuzz` sends 10^6 connections.
 */
import { it } from 'node:test'
import fc from 'fast-check'
import { startFrontFuzz } from './relay-front-fuzz-properties.js'

it('relay HTTP front: any bytes on a socket get HTTP answers or a close, never a crash, a hang, a leaked stream or a denied path upstream', { timeout: 240_000 }, async () => {
  const fuzz = await startFrontFuzz()
  try {
    await fc.assert(fuzz.property, { numRuns: 250, includeErrorInReport: true, seed: Number(process.env.GW_FUZZ_SEED ?? 20261202) })
    await fuzz.settle()
  } finally {
    await fuzz.close()
  }
})
