/**
 * Tokens and limits from a config file, shared by a cluster through a real redis-server:
 * relay A runs `gw relay --config relay.yml`, relay B has no token of its own and no file.
 * B accepts A's tokens with their reserved names and limits, and a reload of A's file
 * (SIGHUP) reaches B: a new token works there, a removed one is revoked there.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { spawnGw, startUpstream, tempDir, waitFor, type Spawned } from '../helpers/stack.js'
import { REDIS_SKIP, startRedis } from '../helpers/redis.js'

const SECRET = 'cluster-config-secret-0123456789abcdef'
const ALICE = 'alice-token-0123456789abcdef'
const BOB = 'bob-token-0123456789abcdef'
const sha = (token: string): string => createHash('sha256').update(token).digest('hex')

describe('a cluster shares the config file\'s tokens and limits', { skip: REDIS_SKIP }, () => {
  it('relay B, with no tokens of its own, accepts relay A\'s with their names and limits; a reload of A reaches B', async () => {
    const dir = tempDir('gw-cluster-config-')
    const redis = await startRedis()
    const upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    const configPath = join(dir, 'relay.yml')
    const write = (tokens: string[]): void => writeFileSync(configPath, ['domain: tunnel.test', 'limits: { tunnels: 2 }', 'tokens:', ...tokens, ''].join('\n'))
    write([`  - { label: alice, sha256: ${sha(ALICE)}, names: [alice-app] }`])
    const procs: Spawned[] = []
    const agents: Agent[] = []
    const spawnRelay = (name: string, extra: string[]): Spawned => {
      // One process per relay: this is about relays on machines (limits.tunnels is counted per
      // process, so `gw relay`'s default of one worker per core would count per worker).
      const p = spawnGw(['relay', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, name), '--redis', redis.url, '--workers', '1', '--log-format', 'json', ...extra],
        { GW_RELAY_CLUSTER_SECRET: SECRET })
      procs.push(p)
      return p
    }
    const started = async (p: Spawned): Promise<string> => `http://127.0.0.1:${(JSON.parse(await p.waitForLine((l) => l.includes('"relay started"'))) as { http_port: number }).http_port}`
    try {
      const a = spawnRelay('a', ['--config', configPath])
      await started(a)
      await a.waitForLine((l) => l.includes('tokens and limits from the config file shared with the cluster'))
      assert.doesNotMatch(redis.cli('get', '{gw}:config'), new RegExp(ALICE), 'only digests are written')
      const b = spawnRelay('b', ['--domain', 'tunnel.test'])
      const urlB = await started(b)
      await b.waitForLine((l) => l.includes('tokens and limits taken from the cluster'))

      // Alice's token works on B, whose own flags and files list no token.
      const alice = await startAgent({ relay: urlB, authtoken: ALICE, endpoints: [{ upstream: upstream.url, publicName: 'alice-app' }] })
      agents.push(alice)
      const res = await request(`${urlB}/x`, { headers: { host: 'alice-app.tunnel.test' } })
      assert.equal(await res.body.text(), 'ok /x')
      // The file's limits hold on B: tunnels 2, and alice already holds one.
      await assert.rejects(startAgent({ relay: urlB, authtoken: ALICE, endpoints: [{ upstream: upstream.url, publicName: 'a2' }, { upstream: upstream.url, publicName: 'a3' }] }),
        { code: 'GW_ERR_TUNNEL_LIMIT' })
      // Bob is not in the file: refused on B too.
      await assert.rejects(startAgent({ relay: urlB, authtoken: BOB, endpoints: [{ upstream: upstream.url, publicName: 'bob-app' }] }), { code: 'GW_ERR_AUTH_INVALID' })

      // A's file now has bob, and alice's token is gone, and bob has alice's reserved name: reloaded on A by SIGHUP.
      write([`  - { label: bob, sha256: ${sha(BOB)}, names: [alice-app, bob-app] }`])
      a.kill('SIGHUP')
      await b.waitForLine((l) => l.includes('tokens and limits changed by another relay of the cluster'), 10_000)
      const stopped = await alice.done
      assert.equal(stopped?.code, 'GW_ERR_AUTH_REVOKED', 'alice\'s agent on B is revoked by the reload of A')
      const bob = await startAgent({ relay: urlB, authtoken: BOB, endpoints: [{ upstream: upstream.url, publicName: 'bob-app' }] })
      agents.push(bob)
      await waitFor(async () => (await (await request(`${urlB}/y`, { headers: { host: 'bob-app.tunnel.test' } })).body.text()) === 'ok /y', 5_000, 'bob served through B')

      // A relay started later without the file knows the newest tokens at once.
      const c = spawnRelay('c', ['--domain', 'tunnel.test'])
      const urlC = await started(c)
      await assert.rejects(startAgent({ relay: urlC, authtoken: ALICE, endpoints: [{ upstream: upstream.url }] }), { code: 'GW_ERR_AUTH_INVALID' })
      const bobOnC = await startAgent({ relay: urlC, authtoken: BOB, endpoints: [{ upstream: upstream.url }] })
      agents.push(bobOnC)
      assert.match(bobOnC.tunnels[0]!.publicUrl, /^http:\/\/[a-z]+-[a-z]+-[a-z0-9]+\.tunnel\.test:\d+$/)
    } finally {
      await Promise.all(agents.map((x) => x.close()))
      for (const p of procs) p.kill('SIGTERM')
      await Promise.all(procs.map((p) => p.exited))
      await upstream.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
