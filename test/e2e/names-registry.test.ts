import { it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { NameRegistry, RANDOM_NAME_TTL_MS, REQUESTED_NAME_TTL_MS } from '@gw/relay/names'
import { GwError } from '@gw/protocol'
import { tempDir } from '../helpers/stack.js'

it('keeps random names across restarts while used, frees them after a week unused, keeps asked-for names', async () => {
  const dir = tempDir()
  let clock = 1_000_000
  const now = () => clock
  try {
    const first = new NameRegistry(dir, now)
    const random = first.claimRandom('token:a')
    first.claim('mine', 'token:a')
    first.claim(random, 'token:a') // the agent coming back for it by name
    assert.throws(() => first.claim(random, 'token:b'), (e: GwError) => e.code === 'GW_ERR_NAME_TAKEN')
    await first.flush()

    clock += RANDOM_NAME_TTL_MS - 1000
    const restarted = new NameRegistry(dir, now)
    assert.equal(restarted.owner(random), 'token:a', 'a random name survives a restart within its time')
    restarted.release(random) // its agent disconnects now
    await restarted.flush()

    clock += RANDOM_NAME_TTL_MS + 1
    const later = new NameRegistry(dir, now)
    assert.equal(later.owner(random), undefined, 'a random name unused for a week is free')
    assert.equal(later.owner('mine'), 'token:a', 'an asked-for name stays its owner')
    assert.ok(!readFileSync(join(dir, 'names.json'), 'utf8').includes(random))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

it('caps names per owner, expires unused requested names, and writes one file per batch of claims', async () => {
  const dir = tempDir()
  let clock = 1_000_000
  try {
    const registry = new NameRegistry(dir, { now: () => clock, maxNamesPerOwner: 300 })
    // The stall: one client claiming name after name. Each claim used to rewrite
    // names.json synchronously; now a burst of claims is one write.
    for (let i = 0; i < 300; i++) registry.claim(`hoard-${i}`, 'token:greedy')
    assert.throws(() => registry.claim('hoard-300', 'token:greedy'), (e: GwError) => e.code === 'GW_ERR_NAME_LIMIT')
    assert.throws(() => registry.claimRandom('token:greedy'), (e: GwError) => e.code === 'GW_ERR_NAME_LIMIT')
    registry.claim('other', 'token:modest') // the cap is per owner
    assert.equal(registry.writes, 0, 'nothing written synchronously')
    await registry.flush()
    assert.equal(registry.writes, 1, '302 claims, one write')
    assert.equal(Object.keys(JSON.parse(readFileSync(join(dir, 'names.json'), 'utf8'))).length, 301)

    // Unused for 90 days, a requested name is free again, and the cap has room.
    clock += REQUESTED_NAME_TTL_MS + 1
    registry.claim('fresh', 'token:greedy')
    assert.equal(registry.owner('hoard-0'), undefined)
    assert.equal(registry.countOf('token:greedy'), 1)
    await registry.flush()
    assert.equal(registry.writes, 2)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
