import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { startRelay } from '@gw/relay'
import { startAgent } from '@gw/cli/agent/agent'
import { GwError } from '@gw/protocol'
import { spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type SpawnRelayOptions } from '../helpers/stack.js'

async function relayWithTokens(tokens: string[]) {
  const stateDir = tempDir()
  const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir, authtokens: tokens })
  return {
    relay,
    close: async () => {
      await relay.close()
      rmSync(stateDir, { recursive: true, force: true })
    },
  }
}

describe('authtokens and names', () => {
  it('refuses to start on a public address without authtokens, and says how to fix it', async () => {
    await assert.rejects(
      startRelay({ host: '0.0.0.0', httpPort: 0, httpsPort: false, domain: 'example.test', stateDir: tempDir() }),
      (err: GwError) => {
        assert.equal(err.code, 'GW_ERR_RELAY_NO_AUTHTOKENS')
        assert.match(err.message, /--authtoken/)
        assert.match(err.message, /--allow-anonymous/)
        return true
      },
    )
  })

  it('rejects a wrong token with GW_ERR_AUTH_INVALID', async () => {
    const { relay, close } = await relayWithTokens(['right-token'])
    try {
      await assert.rejects(
        startAgent({ relay: relay.httpUrl!, authtoken: 'wrong-token', endpoints: [{ upstream: '9' }] }),
        (err: GwError) => err.code === 'GW_ERR_AUTH_INVALID',
      )
      await assert.rejects(startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: '9' }] }), (err: GwError) => err.code === 'GW_ERR_AUTH_REQUIRED')
    } finally {
      await close()
    }
  })

  it('makes the gw binary exit non-zero with the reason on a wrong token', async () => {
    const { relay, close } = await relayWithTokens(['right-token'])
    const config = tempDir()
    try {
      const gw = spawnGw(['http', '9', '--relay', relay.httpUrl!, '--authtoken', 'wrong-token', '--no-tui', '--inspect-addr', '127.0.0.1:0'], {
        GW_CONFIG: join(config, 'gw.yml'),
      })
      const code = await gw.exited
      assert.notEqual(code, 0)
      assert.match(gw.stderr(), /authtoken is not valid/)
      assert.match(gw.stderr(), /GW_ERR_AUTH_INVALID/)
    } finally {
      await close()
      rmSync(config, { recursive: true, force: true })
    }
  })

  it('gives a held name only to the token that holds it', async () => {
    const { relay, close } = await relayWithTokens(['token-a', 'token-b'])
    const upstream = await startUpstream((_req, res) => res.end('a'))
    try {
      const a = await startAgent({ relay: relay.httpUrl!, authtoken: 'token-a', endpoints: [{ upstream: upstream.url, publicName: 'shared' }] })
      await assert.rejects(
        startAgent({ relay: relay.httpUrl!, authtoken: 'token-b', endpoints: [{ upstream: upstream.url, publicName: 'shared' }] }),
        (err: GwError) => {
          assert.equal(err.code, 'GW_ERR_NAME_TAKEN')
          assert.match(err.message, /shared/)
          return true
        },
      )
      // Even with the holder gone, the name stays its owner's.
      await a.close()
      await assert.rejects(
        startAgent({ relay: relay.httpUrl!, authtoken: 'token-b', endpoints: [{ upstream: upstream.url, publicName: 'shared' }] }),
        (err: GwError) => err.code === 'GW_ERR_NAME_TAKEN',
      )
    } finally {
      await close()
      await upstream.close()
    }
  })

  it('gives a name back to its token at once, even while the old connection looks alive', async () => {
    const { relay, close } = await relayWithTokens(['token-a'])
    const up1 = await startUpstream((_req, res) => res.end('first'))
    const up2 = await startUpstream((_req, res) => res.end('second'))
    const pool = new Pool(relay.httpUrl!)
    try {
      // A long heartbeat: the relay will not notice the first agent is gone on its own.
      const first = await startAgent({ relay: relay.httpUrl!, authtoken: 'token-a', endpoints: [{ upstream: up1.url, publicName: 'laptop' }], heartbeatTimeout: 60_000 })
      const second = await startAgent({ relay: relay.httpUrl!, authtoken: 'token-a', endpoints: [{ upstream: up2.url, publicName: 'laptop' }] })
      assert.equal(second.tunnels[0]!.publicName, 'laptop')
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: 'laptop.localhost' } })
      assert.equal(await res.body.text(), 'second')
      // The replaced agent is told why and stops, instead of fighting for the name.
      const why = await first.done
      assert.equal(why?.code, 'GW_ERR_REPLACED')
      await second.close()
    } finally {
      await pool.close()
      await close()
      await up1.close()
      await up2.close()
    }
  })

  it('refuses an invalid name with the rule', async () => {
    const { relay, close } = await relayWithTokens(['t'])
    try {
      await assert.rejects(
        startAgent({ relay: relay.httpUrl!, authtoken: 't', endpoints: [{ upstream: '9', publicName: '-bad_name-' }] }),
        (err: GwError) => err.code === 'GW_ERR_NAME_INVALID' && /letters, digits and hyphens/.test(err.message),
      )
    } finally {
      await close()
    }
  })

  it('gives random names of at least 40 bits, and keeps them across reconnects', async () => {
    const { RANDOM_NAME_BITS, randomName } = await import('@gw/relay')
    assert.ok(RANDOM_NAME_BITS >= 40, `entropy ${RANDOM_NAME_BITS}`)
    const names = new Set(Array.from({ length: 2000 }, randomName))
    assert.equal(names.size, 2000)
    for (const name of names) assert.match(name, /^[a-z]+-[a-z]+-[a-z2-9]{6}$/)
  })
})

describe('reconnects', () => {
  it('survives the relay being killed and restarted, with the same URL', async () => {
    const state = tempDir()
    const config = tempDir()
    const upstream = await startUpstream((_req, res) => res.end('still here'))
    const { freePort } = await import('../helpers/stack.js')
    const port = await freePort()
    const relayOptions: SpawnRelayOptions = { workers: null, httpPort: port, stateDir: state, args: ['--authtoken', 'tok'] }
    let relay = await spawnRelay(relayOptions)
    const agent = spawnGw(
      ['http', upstream.url, '--relay', `http://127.0.0.1:${port}`, '--authtoken', 'tok', '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'],
      { GW_CONFIG: join(config, 'gw.yml') },
    )
    const pool = new Pool(`http://127.0.0.1:${port}`)
    try {
      const started = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
      const host = new URL(started.url).host.split(':')[0]!
      const get = async () => {
        const res = await pool.request({ path: '/', method: 'GET', headers: { host } })
        return { status: res.statusCode, body: await res.body.text() }
      }
      assert.deepEqual(await get(), { status: 200, body: 'still here' })

      relay.kill('SIGKILL')
      await relay.exited
      await agent.waitForLine((l) => l.includes('"reconnecting"'))
      relay = await spawnRelay(relayOptions)
      await agent.waitForLine((l) => l.includes('"reconnected"'), 30_000)
      await waitFor(async () => (await get().catch(() => ({ status: 0 }))).status === 200, 10_000, 'the tunnel to answer again')
      assert.deepEqual(await get(), { status: 200, body: 'still here' })
    } finally {
      await pool.close()
      agent.kill()
      relay.kill()
      await Promise.all([agent.exited, relay.exited])
      await upstream.close()
      rmSync(state, { recursive: true, force: true })
      rmSync(config, { recursive: true, force: true })
    }
  })
})
