/**
 * `--redis rediss://…` and `--redis redis-sentinel://…#mymaster` against real servers:
 * Debian's redis-server serving TLS only, with a certificate from a per-run CA (openssl),
 * and a real sentinel (`redis-server --sentinel`) in front of a real master and replica.
 * Each runs two relays of one cluster: a request through relay B reaches the agent on A.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startRelay, type Relay, type RelayClusterOptions } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'
import { makeTestTls, REDIS_SKIP, startRedis, type RedisServer } from '../helpers/redis.js'

const TOKEN = 'redis-urls-token-0123456789abcdef'
const SECRET = 'redis-urls-secret-0123456789abcdef'

describe('relay cluster: rediss:// and Redis Sentinel', { skip: REDIS_SKIP }, () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  const pair = async (cluster: Omit<RelayClusterOptions, 'secret'>, dir: string, upstream: Upstream): Promise<{ a: Relay; b: Relay; agent: Agent }> => {
    const relay = (name: string): Promise<Relay> => startRelay({
      host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'tunnel.test', authtokens: [TOKEN], stateDir: join(dir, name), cluster: { ...cluster, secret: SECRET },
    })
    const a = await relay('a')
    cleanups.push(() => a.close())
    const b = await relay('b')
    cleanups.push(() => b.close())
    const agent = await startAgent({ relay: a.httpUrl!, authtoken: TOKEN, endpoints: [{ upstream: upstream.url, publicName: 'app' }], backoff: { initial: 100, max: 500 } })
    cleanups.push(() => agent.close())
    return { a, b, agent }
  }
  const get = async (r: Relay, name: string, path: string): Promise<string> => {
    const res = await request(`${r.httpUrl}${path}`, { headers: { host: `${name}.tunnel.test` } })
    return `${res.statusCode} ${await res.body.text()}`
  }

  it('rediss:// with the per-run CA: the cluster works over TLS; without the CA a clear error; gw relay --redis-ca-file', async () => {
    const dir = tempDir('gw-rediss-')
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const tls = makeTestTls(dir)
    const redis = await startRedis({ tls })
    cleanups.push(() => redis.close())
    const upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    cleanups.push(() => upstream.close())
    assert.match(redis.url, /^rediss:\/\/127\.0\.0\.1:\d+$/)

    const { b } = await pair({ redis: redis.url, redisCa: tls.caPem }, dir, upstream)
    assert.equal(await get(b, 'app', '/over-tls'), '200 ok /over-tls')
    assert.match(redis.cli('hget', '{gw}:names', 'app'), /"owner":"token:/, 'the claim reached Redis over TLS')

    // Without the CA, the system's roots do not trust Redis's certificate.
    await assert.rejects(startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'tunnel.test', authtokens: [TOKEN], stateDir: join(dir, 'noca'), cluster: { redis: redis.url, secret: SECRET } }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GW_ERR_RELAY_REDIS')
        assert.match(err.message, /cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+.*certificate.*give --redis-ca-file/s)
        return true
      })
    // A CA file with a plain redis:// URL is a mistake, said before any connection.
    await assert.rejects(startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'tunnel.test', authtokens: [TOKEN], stateDir: join(dir, 'plain'), cluster: { redis: `redis://127.0.0.1:${redis.port}`, redisCa: tls.caPem, secret: SECRET } }),
      { code: 'GW_ERR_RELAY_OPTION_INVALID', message: /--redis-ca-file is for a Redis reached over TLS; give a rediss:\/\/ URL/ })

    // The real binary with --redis-ca-file serves the name too.
    const relay = await spawnRelay({
      workers: null, domain: 'tunnel.test', stateDir: join(dir, 'cli'),
      args: ['--authtoken', TOKEN, '--redis', redis.url, '--redis-ca-file', tls.caPath], env: { GW_RELAY_CLUSTER_SECRET: SECRET },
    })
    cleanups.push(async () => {
      await relay.stop()
    })
    const res = await request(`${relay.url}/cli`, { headers: { host: 'app.tunnel.test' } })
    assert.equal(await res.body.text(), 'ok /cli')
    writeFileSync(join(dir, 'not-a-ca.pem'), 'hello\n')
    const bad = spawnGw(['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, 'bad'),
      '--redis', redis.url, '--redis-ca-file', join(dir, 'not-a-ca.pem')], { GW_RELAY_CLUSTER_SECRET: SECRET })
    assert.notEqual(await bad.exited, 0)
    assert.match(bad.stderr(), /--redis-ca-file .*not-a-ca\.pem holds no PEM certificate.*GW_ERR_INVALID_FLAG/s)
  })

  it('redis-sentinel://…#mymaster: the relays find the master through a real sentinel, and follow it when it fails over to the replica', async () => {
    const dir = tempDir('gw-sentinel-')
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const master = await startRedis()
    cleanups.push(() => master.close())
    const replica: RedisServer = await startRedis({ replicaOf: master.port })
    cleanups.push(() => replica.close())
    await waitFor(() => replica.cli('info', 'replication').includes('master_link_status:up'), 10_000, 'the replica in sync')
    const sentinel = await startRedis({ sentinelFor: { port: master.port, dir } })
    cleanups.push(() => sentinel.close())
    await waitFor(() => sentinel.cli('sentinel', 'replicas', 'mymaster').includes(String(replica.port)), 15_000, 'the sentinel knows the replica')
    const upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    cleanups.push(() => upstream.close())

    const url = `redis-sentinel://127.0.0.1:${sentinel.port}#mymaster`
    const { b } = await pair({ redis: url }, dir, upstream)
    assert.equal(await get(b, 'app', '/through-sentinel'), '200 ok /through-sentinel')
    assert.match(master.cli('hget', '{gw}:names', 'app'), /"owner":"token:/, 'the claim is on the master the sentinel named')

    // The master dies; the sentinel promotes the replica, and the relays follow.
    await master.stop('SIGKILL')
    await waitFor(() => replica.cli('role').startsWith('master'), 30_000, 'the replica promoted')
    // A new agent needs Redis (its claim): admitted once the relays reach the new master.
    let second: Agent | undefined
    await waitFor(async () => {
      second = await startAgent({ relay: b.httpUrl!, authtoken: TOKEN, endpoints: [{ upstream: upstream.url, publicName: 'after-failover' }] }).catch(() => undefined)
      return second !== undefined
    }, 30_000, 'an agent admitted after the failover')
    cleanups.push(() => second?.close())
    assert.match(replica.cli('hget', '{gw}:names', 'after-failover'), /"owner":"token:/, 'the new claim is on the promoted replica')
    assert.match(replica.cli('hget', '{gw}:names', 'app'), /"owner":"token:/, 'the old claim came over with the replica')
    assert.equal(await get(b, 'app', '/after-failover'), '200 ok /after-failover')
  })
})
