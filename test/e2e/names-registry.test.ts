import { it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { NameRegistry, RANDOM_NAME_TTL_MS } from '@gw/relay/names'
import { GwError } from '@gw/protocol'
import { tempDir } from '../helpers/stack.js'

it('keeps random names across restarts while used, frees them after a week unused, keeps asked-for names', () => {
  const dir = tempDir()
  let clock = 1_000_000
  const now = () => clock
  try {
    const first = new NameRegistry(dir, now)
    const random = first.claimRandom('token:a')
    first.claim('mine', 'token:a')
    first.claim(random, 'token:a') // the agent coming back for it by name
    assert.throws(() => first.claim(random, 'token:b'), (e: GwError) => e.code === 'GW_ERR_NAME_TAKEN')

    clock += RANDOM_NAME_TTL_MS - 1000
    const restarted = new NameRegistry(dir, now)
    assert.equal(restarted.owner(random), 'token:a', 'a random name survives a restart within its time')
    restarted.release(random) // its agent disconnects now

    clock += RANDOM_NAME_TTL_MS + 1
    const later = new NameRegistry(dir, now)
    assert.equal(later.owner(random), undefined, 'a random name unused for a week is free')
    assert.equal(later.owner('mine'), 'token:a', 'an asked-for name stays its owner')
    assert.ok(!readFileSync(join(dir, 'names.json'), 'utf8').includes(random))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
