/**
 * A token's `limits.rps` on a cluster of relays on one real redis-server is one budget
 * for the whole cluster: requests for one token spread over two relays are admitted at
 * about rps per second in all, not rps per relay. Redis away: each relay counts on its
 * own, and says so in its log; Redis back: global again.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'
import { REDIS_SKIP, startRedis, type RedisServer } from '../helpers/redis.js'

const TOKEN = 'cluster-limits-token-0123456789abcdef'
const SECRET = 'cluster-limits-secret-0123456789abcdef'
const RPS = 20

interface Tally {
  ok: number
  limited: number
  other: string[]
  byRelay: Map<string, { ok: number; limited: number }>
}

describe('per-token rps across a relay cluster', { skip: REDIS_SKIP }, () => {
  let redis: RedisServer
  let upstream: Upstream
  let dir: string
  let agent: Agent
  const relays: Relay[] = []
  const logs: string[] = []

  const relay = async (): Promise<Relay> => {
    const r = await startRelay({
      host: '127.0.0.1',
      httpPort: 0,
      httpsPort: false,
      domain: 'tunnel.test',
      authtokens: [TOKEN],
      limits: { rps: RPS },
      stateDir: join(dir, `relay-${relays.length}`),
      cluster: { redis: redis.url, secret: SECRET },
      log: (level, msg) => logs.push(`${level} ${msg}`),
    })
    relays.push(r)
    return r
  }

  /** Offer `perSecond` requests a second for `seconds`, turn by turn through `through`; tally the answers. */
  const load = async (through: Relay[], perSecond: number, seconds: number): Promise<Tally & { elapsed: number }> => {
    const tally: Tally = { ok: 0, limited: 0, other: [], byRelay: new Map() }
    const started = Date.now()
    const pending: Array<Promise<void>> = []
    const total = perSecond * seconds
    for (let i = 0; i < total; i++) {
      const r = through[i % through.length]!
      const at = started + (i * 1000) / perSecond
      const wait = at - Date.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      pending.push((async () => {
        const res = await request(`${r.httpUrl}/r${i}`, { headers: { host: 'app.tunnel.test' } })
        const body = await res.body.text()
        const mine = tally.byRelay.get(r.httpUrl!) ?? { ok: 0, limited: 0 }
        tally.byRelay.set(r.httpUrl!, mine)
        if (res.statusCode === 200 && body === `ok /r${i}`) {
          tally.ok++
          mine.ok++
        } else if (res.statusCode === 429 && res.headers['gw-error-code'] === 'GW_ERR_RATE_LIMITED' && res.headers['retry-after'] !== undefined) {
          tally.limited++
          mine.limited++
        } else {
          tally.other.push(`${res.statusCode} ${String(res.headers['gw-error-code'])}`)
        }
      })())
    }
    await Promise.all(pending)
    return { ...tally, elapsed: (Date.now() - started) / 1000 }
  }

  before(async () => {
    dir = tempDir('gw-cluster-limits-')
    redis = await startRedis()
    upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    const a = await relay()
    await relay()
    agent = await startAgent({ relay: a.httpUrl!, authtoken: TOKEN, endpoints: [{ upstream: upstream.url, publicName: 'app' }], backoff: { initial: 100, max: 500 } })
  })

  after(async () => {
    await agent.close()
    await Promise.all(relays.map((r) => r.close()))
    await upstream.close()
    await redis.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it(`rps ${RPS}, load split over two relays: about ${RPS} admitted per second in all, each refusal a 429 GW_ERR_RATE_LIMITED`, async () => {
    const [a, b] = relays as [Relay, Relay]
    // 100 requests a second offered for 3 s, half through each relay.
    const got = await load([a, b], 100, 3)
    assert.deepEqual(got.other, [], 'every answer is a 200 from the agent or a coded 429')
    const budget = RPS * got.elapsed
    console.log(`# rps ${RPS} over 2 relays: ${got.ok} admitted, ${got.limited} refused in ${got.elapsed.toFixed(2)} s (budget ${budget.toFixed(0)}); per relay ${JSON.stringify([...got.byRelay.values()])}`)
    // One budget for both: counted per relay, about twice as many would pass.
    assert.ok(got.ok <= budget * 1.3 + RPS, `admitted ${got.ok}, budget ${budget.toFixed(0)} for the cluster`)
    assert.ok(got.ok >= budget * 0.6, `admitted ${got.ok}, budget ${budget.toFixed(0)}: the limit must not starve the token`)
    for (const [url, counts] of got.byRelay) assert.ok(counts.ok > 0 && counts.limited > 0, `${url}: ${JSON.stringify(counts)}`)
    // The counters are in Redis, per token per second.
    assert.match(redis.cli('keys', '{gw}:rl:*'), /\{gw\}:rl:token:[0-9a-f]{64}:\d+/)
  })

  it('Redis away: each relay counts on its own and says so; Redis back: one budget again', async () => {
    const [a] = relays as [Relay, Relay]
    await redis.stop('SIGKILL')
    try {
      const got = await load([a], 60, 2)
      assert.deepEqual(got.other, [])
      // The relay's own bucket: about rps a second through this relay, never unlimited.
      assert.ok(got.ok <= RPS * got.elapsed * 1.3 + RPS, `admitted ${got.ok} in ${got.elapsed} s without Redis`)
      assert.ok(got.limited > 0)
      assert.ok(logs.some((l) => l.startsWith('warn Redis cannot count rate limits right now')), logs.join('\n'))
    } finally {
      await redis.start()
    }
    await waitFor(async () => {
      await request(`${a.httpUrl}/probe`, { headers: { host: 'app.tunnel.test' } }).then((r) => r.body.text())
      return logs.some((l) => l.startsWith('info rate limits are counted across the cluster again'))
    }, 10_000, 'the global count back')
  })
})
