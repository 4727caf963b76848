/**
 * Relays as a cluster on one real redis-server (`gw relay --redis`): any relay serves any
 * name, ownership holds across relays, a restarted relay knows every name at once, and
 * Redis going away and coming back (empty) costs the agents nothing. The relays and
 * agents are the real ones, in process; kill -9 of a relay is in relay-cluster-kill.test.ts.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { startRelay, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { freePort, spawnGw, startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'
import { REDIS_SKIP, startRedis, type RedisServer } from '../helpers/redis.js'

const TOKEN_1 = 'cluster-token-1-0123456789abcdef'
const TOKEN_2 = 'cluster-token-2-0123456789abcdef'
const SECRET = 'cluster-secret-0123456789abcdef'

describe('relay cluster on Redis', { skip: REDIS_SKIP }, () => {
  let redis: RedisServer
  let upstream: Upstream
  let dir: string
  const relays: Relay[] = []
  const agents: Agent[] = []

  const relay = async (extra: Partial<RelayOptions> = {}): Promise<Relay> => {
    const r = await startRelay({
      host: '127.0.0.1',
      httpPort: 0,
      httpsPort: false,
      domain: 'tunnel.test',
      authtokens: [TOKEN_1, TOKEN_2],
      stateDir: join(dir, `relay-${relays.length}`),
      cluster: { redis: redis.url, secret: SECRET },
      ...extra,
    })
    relays.push(r)
    return r
  }
  const agent = async (r: Relay, token: string, name: string): Promise<Agent> => {
    const a = await startAgent({ relay: r.httpUrl!, authtoken: token, endpoints: [{ upstream: upstream.url, publicName: name }], backoff: { initial: 100, max: 500 } })
    agents.push(a)
    return a
  }
  const get = async (r: Relay, name: string, path = '/'): Promise<{ status: number; body: string; code: string | undefined }> => {
    const res = await request(`${r.httpUrl}${path}`, { headers: { host: `${name}.tunnel.test` } })
    const body = await res.body.text()
    return { status: res.statusCode, body, code: res.headers['gw-error-code'] as string | undefined }
  }

  before(async () => {
    dir = tempDir('gw-cluster-')
    redis = await startRedis()
    upstream = await startUpstream((req, res) => {
      if (req.method === 'POST') {
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => res.end(`posted ${Buffer.concat(chunks).length} bytes to ${req.url}`))
        return
      }
      res.setHeader('x-forwarded-for-seen', String(req.headers['x-forwarded-for']))
      res.end(`hello from ${req.url}`)
    })
    const wss = new WebSocketServer({ server: upstream.server })
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo ${String(m)}`)))
  })

  after(async () => {
    await Promise.all(agents.map((a) => a.close()))
    await Promise.all(relays.map((r) => r.close()))
    await upstream.close()
    await redis.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a request through relay B reaches the agent that dialled relay A: GET, a 1 MiB POST, a WebSocket', async () => {
    const a = await relay()
    const b = await relay()
    await agent(a, TOKEN_1, 'app')
    assert.deepEqual(await get(a, 'app', '/direct'), { status: 200, body: 'hello from /direct', code: undefined })
    assert.deepEqual(await get(b, 'app', '/through-b'), { status: 200, body: 'hello from /through-b', code: undefined })
    assert.deepEqual(b.onlineNames(), [], 'relay B holds no agent itself')

    const posted = await request(`${b.httpUrl}/upload`, { method: 'POST', headers: { host: 'app.tunnel.test' }, body: Buffer.alloc(1024 * 1024, 7) })
    assert.equal(posted.statusCode, 200)
    assert.equal(await posted.body.text(), `posted ${1024 * 1024} bytes to /upload`)

    const ws = new WebSocket(`${b.httpUrl!.replace('http', 'ws')}/ws`, { headers: { host: 'app.tunnel.test' } })
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('ping'))
      ws.once('message', (m) => resolve(String(m)))
      ws.once('error', reject)
    })
    ws.close()
    assert.equal(echoed, 'echo ping')

    // A name nobody owns is unknown on every relay.
    assert.equal((await get(b, 'nobody')).code, 'GW_ERR_TUNNEL_NOT_FOUND')
    // Presence in Redis names relay A for the name.
    assert.equal(redis.cli('zcard', '{gw}:p:app'), '1')
  })

  it('a name held by token 1 through relay A is refused to token 2 through relay B', async () => {
    const [a, b] = relays as [Relay, Relay]
    await agent(a, TOKEN_1, 'owned')
    await assert.rejects(agent(b, TOKEN_2, 'owned'), (err: Error & { code?: string }) => err.code === 'GW_ERR_NAME_TAKEN')
    // Still served from both relays, by token 1's agent.
    assert.equal((await get(b, 'owned')).status, 200)
  })

  it('an agent of the same token that comes back through relay B takes the name over from relay A', async () => {
    const [a, b] = relays as [Relay, Relay]
    const first = await agent(a, TOKEN_1, 'moving')
    assert.ok(a.onlineNames().includes('moving'))
    // Another connection of token 1 (a laptop that woke up on another network, a restart
    // whose old link relay A still believes in) asks for the name through relay B.
    await agent(b, TOKEN_1, 'moving')
    const stopped = await first.done
    assert.equal(stopped?.code, 'GW_ERR_REPLACED')
    await waitFor(() => !a.onlineNames().includes('moving'), 5_000, 'relay A dropped its link for the name')
    // With what Redis held when it timed out: this flaked under load once, cause not yet known.
    let holders = ''
    await waitFor(() => (holders = redis.cli('zrange', '{gw}:p:moving', '0', '-1', 'withscores')).split('\n')[0] === relays[1]!.clusterId && holders.split('\n').length === 2, 5_000, 'only relay B announces the name')
      .catch((err: Error) => { throw new Error(`${err.message}: presence of moving ${JSON.stringify(holders)}; relay A ${relays[0]!.clusterId}, relay B ${relays[1]!.clusterId}, now ${Date.now()}`) })
    // Relay A now forwards the name to relay B.
    assert.deepEqual(await get(a, 'moving', '/after-takeover'), { status: 200, body: 'hello from /after-takeover', code: undefined })
  })

  it('a takeover message drops only links older than the one that took over: a late one about an earlier link leaves the newer link alone', async () => {
    const [a, b] = relays as [Relay, Relay]
    await agent(b, TOKEN_1, 'late')
    const owner = `token:${createHash('sha256').update(TOKEN_1).digest('hex')}`
    const publish = (at: number): void => {
      redis.cli('publish', '{gw}:takeover', JSON.stringify({ relay: a.clusterId, name: 'late', owner, at }))
    }
    // Relay A's message about a link of its own that arrived before this one (two
    // connections of one agent a few ms apart, the message delivered late): kept.
    publish(Date.now() - 60_000)
    await new Promise((r) => setTimeout(r, 300))
    assert.ok(b.onlineNames().includes('late'), 'a stale takeover dropped the newer link')
    assert.equal((await get(b, 'late', '/still')).status, 200)
    // A link that arrived after this one took the name: this one goes.
    publish(Date.now() + 1_000)
    await waitFor(() => !b.onlineNames().includes('late'), 5_000, 'relay B dropped the older link')
  })

  it('a relay started on the same Redis knows every name at once', async () => {
    const fresh = await relay()
    // Its first request, with no warm-up: a name held on relay A.
    assert.deepEqual(await get(fresh, 'app', '/first'), { status: 200, body: 'hello from /first', code: undefined })
    // A name that is owned but whose agent left is offline, not unknown.
    const gone = await agent(relays[0]!, TOKEN_1, 'gone')
    await gone.close()
    await waitFor(() => redis.cli('zcard', '{gw}:p:gone') === '0', 5_000, 'presence of gone withdrawn')
    const restarted = await relay()
    assert.equal((await get(restarted, 'gone')).code, 'GW_ERR_AGENT_OFFLINE')
    assert.equal((await get(restarted, 'nobody-at-all')).code, 'GW_ERR_TUNNEL_NOT_FOUND')
    await assert.rejects(agent(restarted, TOKEN_2, 'gone'), (err: Error & { code?: string }) => err.code === 'GW_ERR_NAME_TAKEN')
  })

  it('Redis restarted: relays keep serving the agents they hold, and register again when it returns', async () => {
    const [a, b] = relays as [Relay, Relay]
    assert.equal((await get(b, 'app')).status, 200)
    await redis.stop('SIGKILL')
    try {
      // The agent's own relay needs no Redis to serve it.
      for (let i = 0; i < 20; i++) assert.equal((await get(a, 'app', `/while-down-${i}`)).status, 200)
      // Another relay forwards to the holder it last saw.
      assert.equal((await get(b, 'app', '/b-while-down')).status, 200)
      // A new agent cannot be admitted without the shared names: it is told so, and may retry.
      await assert.rejects(agent(b, TOKEN_1, 'newcomer'), (err: Error & { code?: string }) => err.code === 'GW_ERR_CLUSTER_UNAVAILABLE')
    } finally {
      await redis.start()
    }
    // The Redis that came back is empty; relay A writes its presence and claims again.
    await waitFor(() => redis.cli('zcard', '{gw}:p:app') === '1', 10_000, 'presence of app registered again')
    await waitFor(() => redis.cli('hget', '{gw}:names', 'app').includes('"owner"'), 10_000, 'ownership of app claimed again')
    await waitFor(async () => (await get(b, 'app', '/after')).status === 200, 5_000, 'relay B forwarding again')
    // Ownership survived the empty Redis: token 2 still cannot take the name.
    await assert.rejects(agent(b, TOKEN_2, 'owned'), (err: Error & { code?: string }) => err.code === 'GW_ERR_NAME_TAKEN')
    // And new agents are admitted again.
    await agent(b, TOKEN_1, 'newcomer')
    assert.equal((await get(a, 'newcomer')).status, 200)
  })

  it('gw relay with Redis down at start: one clear line and a non-zero exit', async () => {
    const port = await freePort()
    const child = spawnGw(['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, 'down'), '--redis', `redis://:hunter2secret@127.0.0.1:${port}`], { GW_RELAY_CLUSTER_SECRET: SECRET })
    const code = await child.exited
    assert.notEqual(code, 0)
    const stderr = child.stderr()
    assert.match(stderr, /cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+.*check --redis/s)
    assert.match(stderr, /GW_ERR_RELAY_REDIS/)
    assert.doesNotMatch(stderr + child.lines.join('\n'), /hunter2secret/, 'the password is never printed')

    // Without the cluster secret the relay does not start either, and says what to give.
    const noSecret = spawnGw(['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, 'nosecret'), '--redis', redis.url], { GW_RELAY_CLUSTER_SECRET: '' })
    assert.notEqual(await noSecret.exited, 0)
    assert.match(noSecret.stderr(), /cluster secret.*--cluster-secret-file/s)
  })
})

describe('relay cluster: the relays an agent learns from its welcome', { skip: REDIS_SKIP }, () => {
  it('an agent welcomed right after another relay joined learns that relay, and moves to it when its own goes', async () => {
    const dir = tempDir('gw-cluster-join-')
    const redis = await startRedis()
    const upstream = await startUpstream((req, res) => res.end(`hello from ${req.url}`))
    const started: Relay[] = []
    const relay = async (name: string): Promise<Relay> => {
      const r = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'tunnel.test', authtokens: [TOKEN_1], stateDir: join(dir, name), cluster: { redis: redis.url, secret: SECRET } })
      started.push(r)
      return r
    }
    let moved: Agent | undefined
    try {
      // Within a second of each other, as relays of one deploy start: the list relay C read
      // when it started did not have D yet, and was reused for C's welcomes for a second.
      const c = await relay('c')
      const d = await relay('d')
      moved = await startAgent({ relay: c.httpUrl!, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: 'joiner' }], backoff: { initial: 100, max: 500 } })
      await c.close()
      await waitFor(() => moved!.status().status === 'online' && moved!.status().relay === d.httpUrl, 10_000, 'the agent on relay D')
        .catch((err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(moved!.status())}, relay D ${d.httpUrl}`) })
      const res = await request(`${d.httpUrl}/moved`, { headers: { host: 'joiner.tunnel.test' } })
      assert.equal(await res.body.text(), 'hello from /moved')
    } finally {
      await moved?.close()
      await Promise.all(started.map((r) => r.close()))
      await upstream.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
