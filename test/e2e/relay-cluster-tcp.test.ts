/**
 * tcp endpoints on a cluster of relays sharing one real redis-server: port owners are
 * kept in Redis with the rules of names, every relay listens on every port the cluster
 * holds, and a TCP connection to a relay that does not hold the agent is forwarded over
 * the relay-to-relay link. Relays A and B listen on 127.0.0.1 and 127.0.0.2, as two
 * machines would on their own addresses, so both can listen on one port number.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { startRelay, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { freePortBlock, spawnGw, spawnRelay, tempDir, waitFor, type Spawned, type SpawnedRelay } from '../helpers/stack.js'
import { echo, exchange, portOf, sha256, startTcpServer, type TcpServer } from '../helpers/tcp.js'
import { REDIS_SKIP, startRedis, type RedisServer } from '../helpers/redis.js'

const TOKEN_1 = 'cluster-tcp-token-1-0123456789abcdef'
const TOKEN_2 = 'cluster-tcp-token-2-0123456789abcdef'
const SECRET = 'cluster-tcp-secret-0123456789abcdef'
const HOST_A = '127.0.0.1'
const HOST_B = '127.0.0.2'

/** Whether a connection to host:port is accepted (not refused). */
function accepts(port: number, host: string): Promise<boolean> {
  return exchange(port, 'probe', { host }).then((r) => r.ending !== 'ECONNREFUSED' && r.received.toString() === 'probe')
}

describe('tcp endpoints on a relay cluster', { skip: REDIS_SKIP }, () => {
  let redis: RedisServer
  let upstream: TcpServer
  let dir: string
  const relays: Relay[] = []
  const agents: Agent[] = []
  const procs: Spawned[] = []

  const relay = async (host: string, min: number, extra: Partial<RelayOptions> = {}): Promise<Relay> => {
    const r = await startRelay({
      host,
      httpPort: 0,
      httpsPort: false,
      domain: 'localhost',
      authtokens: [TOKEN_1, TOKEN_2],
      stateDir: join(dir, `relay-${relays.length}`),
      tcpPorts: { min, max: min + 3 },
      cluster: { redis: redis.url, secret: SECRET, presenceTtl: 3_000 },
      ...extra,
    })
    relays.push(r)
    return r
  }
  const tcpAgent = async (r: Relay, token: string, remotePort?: number): Promise<Agent> => {
    const a = await startAgent({
      relay: r.httpUrl!,
      authtoken: token,
      agentId: `agent-${token}`,
      backoff: { initial: 50, max: 200 },
      endpoints: [{ proto: 'tcp', upstream: String(upstream.port), ...(remotePort !== undefined ? { remotePort } : {}) }],
    })
    agents.push(a)
    return a
  }

  before(async () => {
    dir = tempDir('gw-cluster-tcp-')
    redis = await startRedis()
    upstream = await startTcpServer(echo)
  })

  after(async () => {
    await Promise.all(agents.map((a) => a.close()))
    await Promise.all(relays.map((r) => r.close()))
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    await upstream.close()
    await redis.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a TCP connection through relay B reaches the agent on relay A; token 2 is refused the port through B; the port closes on both when the agent leaves', async () => {
    const min = await freePortBlock(4, [HOST_A, HOST_B])
    const a = await relay(HOST_A, min)
    const b = await relay(HOST_B, min)
    const agent = await tcpAgent(a, TOKEN_1, min)
    assert.equal(agent.tunnels[0]!.publicUrl, `tcp://${HOST_A}:${min}`)
    // The owner is in Redis, under the ports' own keys.
    assert.match(redis.cli('hget', '{gw}:tcp', String(min)), /"owner":"token:[0-9a-f]{64}"/)
    assert.equal(redis.cli('hget', '{gw}:names', String(min)), '', 'a port is not a name')

    // Relay B listens on the port too, for the cluster, and forwards to relay A.
    await waitFor(() => accepts(min, HOST_B), 5_000, 'relay B accepting on the port relay A holds')
    const sent = randomBytes(1024 * 1024)
    const through = await exchange(min, sent, { host: HOST_B })
    assert.equal(through.ending, 'end')
    assert.equal(sha256(through.received), sha256(sent), '1 MiB echoed intact through relay B and the relay-to-relay link')
    assert.equal((await exchange(min, 'direct', { host: HOST_A })).received.toString(), 'direct')

    // Token 2 cannot have it through relay B, whose own listener is only a forwarder.
    await assert.rejects(tcpAgent(b, TOKEN_2, min), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_TCP_PORT_TAKEN')
      assert.match(err.message, new RegExp(`TCP port ${min} belongs to another authtoken`))
      return true
    })
    // A port chosen for token 2 through B is another one of the range, served through A as well.
    const other = await tcpAgent(b, TOKEN_2)
    const port2 = portOf(other.tunnels[0]!.publicUrl)
    assert.ok(port2 > min && port2 <= min + 3, `port ${port2} in the range, not ${min}`)
    await waitFor(() => accepts(port2, HOST_A), 5_000, 'relay A forwarding the port token 2 holds on relay B')

    // The agent leaves: no relay holds the port, and both stop listening on it.
    await agent.close()
    await waitFor(async () => !(await accepts(min, HOST_A)) && !(await accepts(min, HOST_B)), 10_000, 'the port closed on both relays')
    assert.equal(redis.cli('zrangebyscore', '{gw}:tcp-live', String(Date.now()), '+inf').split('\n').includes(String(min)), false)
    // Still token 1's: token 2 is refused it through either relay.
    await assert.rejects(tcpAgent(a, TOKEN_2, min), { code: 'GW_ERR_TCP_PORT_TAKEN' })
    await other.close()
    await Promise.all(relays.splice(0).map((r) => r.close()))
  })

  it('kill -9 of relay A: the agent moves to relay B and regains its port there, which token 2 never gets', async () => {
    const min = await freePortBlock(4, [HOST_A, HOST_B])
    // One process per relay (kill -9 of the relay is the point); --workers has its own test below.
    const relayOn = async (host: string, name: string): Promise<SpawnedRelay> => {
      const p = await spawnRelay({ host, stateDir: join(dir, name), args: ['--tcp-ports', `${min}-${min + 3}`, '--authtoken', TOKEN_1, '--authtoken', TOKEN_2, '--redis', redis.url], env: { GW_RELAY_CLUSTER_SECRET: SECRET } })
      procs.push(p)
      return p
    }
    const [a, b] = await Promise.all([relayOn(HOST_A, 'kill-a'), relayOn(HOST_B, 'kill-b')])
    const [portA, portB] = [a.httpPort, b.httpPort]
    // An agent learns the cluster's relays from its welcome, from a list a relay reads at
    // most once a second: both relays registered, and that second passed.
    await waitFor(() => redis.cli('zcard', '{gw}:relays') === '2', 5_000, 'both relays registered')
    await new Promise((r) => setTimeout(r, 1_100))
    const agent = await startAgent({
      relay: `http://${HOST_A}:${portA}`,
      authtoken: TOKEN_1,
      backoff: { initial: 50, max: 200 },
      endpoints: [{ proto: 'tcp', upstream: String(upstream.port), remotePort: min + 1 }],
    })
    agents.push(agent)
    await waitFor(() => accepts(min + 1, HOST_B), 5_000, 'relay B forwarding the port')

    a.child.kill('SIGKILL')
    await a.exited
    // The agent learned relay B's URL from relay A's welcome, and gets its port back there.
    await waitFor(() => agent.tunnels[0]?.publicUrl === `tcp://${HOST_B}:${min + 1}`, 20_000, 'the agent on relay B with its port').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(agent.status())}\nrelay B:\n${b.lines.join('\n')}`)
    })
    assert.equal((await exchange(min + 1, 'after the kill', { host: HOST_B })).received.toString(), 'after the kill')
    await assert.rejects(startAgent({
      relay: `http://${HOST_B}:${portB}`,
      authtoken: TOKEN_2,
      endpoints: [{ proto: 'tcp', upstream: String(upstream.port), remotePort: min + 1 }],
    }), { code: 'GW_ERR_TCP_PORT_TAKEN' })
    await agent.close()
    agents.splice(agents.indexOf(agent), 1)
    b.kill('SIGTERM')
    assert.equal(await b.exited, 0)
  })

  it('gw relay --workers 2 --tcp-ports serves gw tcp: connections arrive through both workers and all reach the agent', async () => {
    const min = await freePortBlock(4, [HOST_A, HOST_B])
    const relayProc = await spawnRelay({
      workers: 2, host: HOST_A, stateDir: join(dir, 'workers'), timeout: 30_000,
      args: ['--tcp-ports', `${min}-${min + 3}`, '--authtoken', TOKEN_1, '--redis', redis.url], env: { GW_RELAY_CLUSTER_SECRET: SECRET },
    })
    procs.push(relayProc)
    const { httpPort } = relayProc
    const tcp = spawnGw(['tcp', String(upstream.port), '--remote-addr', `localhost:${min + 2}`, '--relay', `http://${HOST_A}:${httpPort}`,
      '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0', '--config', join(dir, 'gw-tcp.yml')], { GW_AUTHTOKEN: TOKEN_1 })
    procs.push(tcp)
    const started = JSON.parse(await tcp.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
    assert.equal(started.url, `tcp://${HOST_A}:${min + 2}`)
    // Both workers listen on the port (the primary hands connections to them in turn):
    // the one that does not hold the agent looks it up in Redis and forwards.
    const evalCalls = (): number => [...redis.cli('info', 'commandstats').matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
    await waitFor(() => redis.cli('zscore', '{gw}:tcp-live', String(min + 2)) !== '', 5_000, 'the port live in the cluster')
    await new Promise((r) => setTimeout(r, 300))
    const before = evalCalls()
    for (let i = 0; i < 30; i++) {
      const got = await exchange(min + 2, `connection ${i}`, { host: HOST_A })
      assert.equal(got.received.toString(), `connection ${i}`)
      assert.equal(got.ending, 'end')
      // Past the lookup cache's second now and then, so more than one lookup is seen.
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1_100))
    }
    assert.ok(evalCalls() > before, 'connections reached the worker that does not hold the agent, which looked it up')
    tcp.kill('SIGTERM')
    await tcp.exited
    relayProc.kill('SIGTERM')
    assert.equal(await relayProc.exited, 0)
  })
})
