/**
 * The two places a cluster keeps its shared state (cluster/backend.ts), run through the
 * same cases: Redis (the Lua claim and rate scripts, on a real redis-server) and the
 * primary of `gw relay --workers` (ClusterState, reached through IpcBackend over a pair
 * of message channels as node:cluster's IPC delivers them). Both follow one clock the test
 * moves, so expiry is checked without waiting.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { rmSync } from 'node:fs'
import type { ClusterBackend } from '@gw/relay/cluster/backend'
import { RedisBackend } from '@gw/relay/cluster/redis-backend'
import { connectRedis } from '@gw/relay/cluster/redis-connection'
import { ClusterState } from '@gw/relay/cluster/state'
import { IpcBackend, serveClusterState } from '@gw/relay/cluster/ipc-backend'
import { REQUESTED_NAME_TTL_MS, RANDOM_NAME_TTL_MS } from '@gw/relay/names'
import { REDIS_SKIP, startRedis, type RedisServer } from '../helpers/redis.js'
import { tempDir } from '../helpers/stack.js'

const DAY = 24 * 3600 * 1000

interface Clock { t: number }

/** A worker's IpcBackend and the primary's serveClusterState over two emitters, messages copied as IPC does. */
function ipcPair(state: ClusterState): { backend: IpcBackend; exit(): void } {
  const parent = new EventEmitter()
  const worker = new EventEmitter()
  const deliver = (to: EventEmitter, message: unknown): void => void setImmediate(() => to.emit('message', JSON.parse(JSON.stringify(message))))
  serveClusterState(state, { send: (m: unknown) => deliver(parent, m), on: (event: string, fn: (...a: unknown[]) => void) => worker.on(event, fn) })
  const backend = IpcBackend.connect({ send: (m: unknown) => deliver(worker, m), on: (e: 'message', fn: (m: unknown) => void) => parent.on(e, fn), off: (e: 'message', fn: (m: unknown) => void) => parent.off(e, fn) })
  return { backend, exit: () => worker.emit('exit') }
}

/** The cases, against `make()`: a fresh, empty backend on `clock`. */
function cases(name: string, make: (clock: Clock) => Promise<{ backend: ClusterBackend; close(): Promise<void>; extra?: { exit(): void } }>, skip: string | false = false): void {
  describe(`cluster state: ${name}`, { skip }, () => {
    it('names: the first owner keeps a name; fresh claims; the per-owner cap; forget', async () => {
      const clock = { t: 1_700_000_000_000 }
      const { backend: b, close } = await make(clock)
      try {
        assert.equal(await b.claim('name', 'app', 'token:a', 'claim', 3), 'OK')
        assert.equal(await b.claim('name', 'app', 'token:b', 'claim', 3), 'TAKEN')
        assert.equal(await b.claim('name', 'app', 'token:a', 'claim', 3), 'OK', 'its owner claims it again')
        assert.equal(await b.ownerOf('name', 'app'), 'token:a')
        assert.equal(await b.claim('name', 'app', 'token:a', 'random', 3), 'EXISTS', 'a fresh claim of a held name')
        assert.equal(await b.claim('name', 'rnd', 'token:a', 'random', 3), 'OK')
        assert.equal(await b.claim('name', 'third', 'token:a', 'claim', 3), 'OK')
        assert.equal(await b.claim('name', 'fourth', 'token:a', 'claim', 3), 'LIMIT')
        assert.equal(await b.claim('name', 'fourth', 'token:b', 'claim', 3), 'OK', 'the cap is per owner')
        // Names and ports are owned apart.
        assert.equal(await b.claim('port', 'app', 'token:b', 'claim', 3), 'OK')
        assert.deepEqual((await b.owners('name')).sort(), [['app', 'token:a'], ['fourth', 'token:b'], ['rnd', 'token:a'], ['third', 'token:a']])
        await b.forget('port', 'app', 'token:a')
        assert.equal(await b.ownerOf('port', 'app'), 'token:b', 'forget is the owner\'s only')
        await b.forget('port', 'app', 'token:b')
        assert.equal(await b.ownerOf('port', 'app'), undefined)
      } finally {
        await close()
      }
    })

    it('expiry: 7 days for a random name, 90 for a requested one, never while a relay holds it', async () => {
      const clock = { t: 1_700_000_000_000 }
      const { backend: b, close } = await make(clock)
      try {
        assert.equal(await b.claim('name', 'asked', 'token:a', 'claim', 10), 'OK')
        assert.equal(await b.claim('name', 'given', 'token:a', 'random', 10), 'OK')
        assert.equal(await b.claim('name', 'held', 'token:a', 'claim', 10), 'OK')
        await b.refresh({ id: 'relay-1', peer: '127.0.0.1:1', agentUrls: [] }, 200 * DAY)
        await b.announce('name', 'relay-1', ['held'], 200 * DAY)
        clock.t += RANDOM_NAME_TTL_MS + 1
        assert.equal(await b.claim('name', 'given', 'token:b', 'claim', 10), 'OK', 'a random name is free after 7 days')
        assert.equal(await b.claim('name', 'asked', 'token:b', 'claim', 10), 'TAKEN', 'a requested one is not')
        clock.t += REQUESTED_NAME_TTL_MS
        assert.equal(await b.claim('name', 'asked', 'token:b', 'claim', 10), 'OK', 'a requested name is free after 90 days')
        assert.equal(await b.claim('name', 'held', 'token:b', 'claim', 10), 'TAKEN', 'a held name never expires')
        // touch: seen now, so its clock starts again.
        await b.touch('name', ['asked'])
        clock.t += REQUESTED_NAME_TTL_MS - DAY
        assert.equal(await b.claim('name', 'asked', 'token:c', 'claim', 10), 'TAKEN')
      } finally {
        await close()
      }
    })

    it('presence: locate, holders freshest first, withdraw, live ports, relays, leave', async () => {
      const clock = { t: 1_700_000_000_000 }
      const { backend: b, close, extra } = await make(clock)
      try {
        const r1 = { id: 'relay-1', peer: '127.0.0.1:1001', agentUrls: ['http://a'] }
        const r2 = { id: 'relay-2', peer: '127.0.0.1:1002', agentUrls: [] }
        await b.claim('name', 'app', 'token:a', 'claim', 10)
        await b.refresh(r1, 15_000)
        await b.refresh(r2, 15_000)
        await b.announce('name', 'relay-1', ['app'], 15_000)
        clock.t += 1000
        await b.announce('name', 'relay-2', ['app'], 15_000)
        let located = await b.locate('name', 'app')
        assert.equal(located.owner, 'token:a')
        assert.deepEqual(located.holders.map((h) => h.record), [r2, r1])
        assert.deepEqual((await b.relays()).map((r) => r.id).sort(), ['relay-1', 'relay-2'])
        await b.withdraw('name', 'relay-2', ['app'])
        located = await b.locate('name', 'app')
        assert.deepEqual(located.holders.map((h) => h.record.id), ['relay-1'])
        await b.announce('port', 'relay-1', ['20001'], 15_000)
        assert.deepEqual(await b.live('port'), ['20001'])
        assert.deepEqual(await b.live('name').then((l) => l.filter((n) => n === '20001')), [])
        // Past the TTL without a refresh: gone.
        clock.t += 16_000
        assert.deepEqual((await b.locate('name', 'app')).holders, [])
        assert.deepEqual(await b.live('port'), [])
        await b.refresh(r1, 15_000)
        await b.announce('name', 'relay-1', ['app'], 15_000)
        await b.announce('port', 'relay-1', ['20001'], 15_000)
        await b.leave('relay-1', ['app'], ['20001'])
        assert.deepEqual((await b.locate('name', 'app')).holders, [])
        assert.deepEqual(await b.live('port'), [])
        assert.deepEqual(await b.relays(), [])
        if (extra) {
          // The primary only: a worker that exits (kill -9) loses its presence at once.
          await b.refresh(r1, 15_000)
          await b.announce('name', 'relay-1', ['app'], 15_000)
          assert.equal((await b.locate('name', 'app')).holders.length, 1)
          extra.exit()
          assert.deepEqual((await b.locate('name', 'app')).holders, [])
        }
      } finally {
        await close()
      }
    })

    it('internal endpoints: `<owner> <host>` presence with no owner of its own, a live list kept while any relay holds an entry, the TTL, leave', async () => {
      const clock = { t: 1_700_000_000_000 }
      const { backend: b, close } = await make(clock)
      try {
        const r1 = { id: 'relay-1', peer: '127.0.0.1:1001', agentUrls: [] }
        const r2 = { id: 'relay-2', peer: '127.0.0.1:1002', agentUrls: [] }
        await b.refresh(r1, 15_000)
        await b.refresh(r2, 15_000)
        const mine = 'token:a api.internal'
        const theirs = 'token:b api.internal'
        const raw = 'token:a tcp://camera.internal:22'
        await b.announce('internal', 'relay-1', [mine, raw], 15_000)
        await b.announce('internal', 'relay-2', [mine, theirs], 15_000)
        assert.deepEqual((await b.live('internal')).sort(), [mine, theirs, raw].sort())
        // Names and ports do not see them.
        assert.deepEqual(await b.live('port'), [])
        const located = await b.locate('internal', mine)
        assert.equal(located.owner, undefined, 'the entry names its owner')
        assert.deepEqual(located.holders.map((h) => h.record.id).sort(), ['relay-1', 'relay-2'])
        assert.deepEqual((await b.locate('internal', theirs)).holders.map((h) => h.record.id), ['relay-2'])
        // One relay withdraws: still live while the other holds it.
        await b.withdraw('internal', 'relay-2', [mine, theirs])
        assert.deepEqual((await b.live('internal')).sort(), [mine, raw].sort())
        assert.deepEqual((await b.locate('internal', mine)).holders.map((h) => h.record.id), ['relay-1'])
        // Past the TTL without a refresh: gone.
        clock.t += 16_000
        assert.deepEqual(await b.live('internal'), [])
        assert.deepEqual((await b.locate('internal', mine)).holders, [])
        await b.refresh(r1, 15_000)
        await b.announce('internal', 'relay-1', [mine], 15_000)
        assert.deepEqual(await b.live('internal'), [mine])
        await b.leave('relay-1', [], [], [mine])
        assert.deepEqual(await b.live('internal'), [])
        assert.deepEqual((await b.locate('internal', mine)).holders, [])
      } finally {
        await close()
      }
    })

    it('rate: a sliding one-second window per owner', async () => {
      const clock = { t: 1_700_000_000_000 } // on a second's boundary
      const { backend: b, close } = await make(clock)
      try {
        const admitted = async (n: number): Promise<number> => {
          let ok = 0
          for (let i = 0; i < n; i++) if (await b.rate('token:a', 3)) ok++
          return ok
        }
        assert.equal(await admitted(5), 3, 'rps 3 in one second')
        assert.equal(await b.rate('token:b', 3), true, 'each owner its own budget')
        clock.t += 1000
        assert.equal(await admitted(1), 0, 'the last second counts whole at its end')
        clock.t += 500
        assert.equal(await admitted(3), 1, 'half of it at the middle: 1.5 + 1 ≤ 3, then over')
        clock.t += 2000
        assert.equal(await admitted(4), 3, 'two seconds later, a full budget')
      } finally {
        await close()
      }
    })

    it('ACME: challenges with a TTL, certificates, one account key, the order lock, backoff and the hourly budget', async () => {
      const clock = { t: 1_700_000_000_000 }
      const { backend: b, close } = await make(clock)
      // Redis expires keys on its own clock (PX): those steps move the test's clock and wait as long.
      const pass = async (ms: number): Promise<void> => {
        clock.t += ms
        await new Promise((r) => setTimeout(r, ms))
      }
      try {
        await b.acmeChallengeSet('http-01:tok', 'tok.thumb', 150)
        assert.equal(await b.acmeChallengeGet('http-01:tok'), 'tok.thumb')
        assert.equal(await b.acmeChallengeGet('http-01:other'), null)
        await b.acmeChallengeDelete('http-01:tok')
        assert.equal(await b.acmeChallengeGet('http-01:tok'), null)
        await b.acmeChallengeSet('tls-alpn-01:app.test', '{"cert":"c","key":"k"}', 150)
        await pass(300)
        assert.equal(await b.acmeChallengeGet('tls-alpn-01:app.test'), null, 'a challenge runs out with its TTL')

        assert.deepEqual(await b.acmeCerts(), [])
        await b.acmeCertSet('app.test', '{"cert":"1"}')
        await b.acmeCertSet('*.tunnel.test', '{"cert":"w"}')
        await b.acmeCertSet('app.test', '{"cert":"2"}')
        assert.equal(await b.acmeCertGet('app.test'), '{"cert":"2"}')
        assert.deepEqual((await b.acmeCerts()).sort(), [['*.tunnel.test', '{"cert":"w"}'], ['app.test', '{"cert":"2"}']])
        await b.acmeCertDelete('*.tunnel.test')
        assert.equal(await b.acmeCertGet('*.tunnel.test'), null)

        assert.equal(await b.acmeAccountKey('key-of-relay-1'), 'key-of-relay-1')
        assert.equal(await b.acmeAccountKey('key-of-relay-2'), 'key-of-relay-1', 'the first key is the cluster\'s')

        // The lock: one holder; it ends with the holder's end, or with its TTL.
        assert.equal(await b.acmeBegin('app.test', 'relay-1', 60_000, 3), 'OK')
        assert.equal(await b.acmeLocked('app.test'), true)
        assert.equal(await b.acmeBegin('app.test', 'relay-2', 60_000, 3), 'LOCKED')
        await b.acmeEnd('app.test', 'relay-2', 0)
        assert.equal(await b.acmeLocked('app.test'), true, 'only the holder ends it')
        await b.acmeEnd('app.test', 'relay-1', 0)
        assert.equal(await b.acmeLocked('app.test'), false)
        assert.equal(await b.acmeBegin('dies.test', 'relay-1', 150, 3), 'OK')
        await pass(300)
        assert.equal(await b.acmeLocked('dies.test'), false, 'a dead holder\'s lock runs out')
        // A failed order: no order for the key during its backoff.
        assert.equal(await b.acmeBegin('dies.test', 'relay-2', 60_000, 4), 'OK')
        await b.acmeEnd('dies.test', 'relay-2', 150)
        assert.equal(await b.acmeBegin('dies.test', 'relay-1', 60_000, 4), 'BACKOFF')
        await pass(300)
        // Four orders started within the hour (app, dies, dies, and this one): the fifth is over a budget of 4.
        assert.equal(await b.acmeBegin('dies.test', 'relay-1', 60_000, 4), 'OK')
        await b.acmeEnd('dies.test', 'relay-1', 0)
        assert.equal(await b.acmeBegin('new.test', 'relay-2', 60_000, 4), 'RATE', 'the budget is for every relay and key together')
        clock.t += 3600_000
        assert.equal(await b.acmeBegin('new.test', 'relay-2', 60_000, 4), 'OK', 'an hour later the budget is back')
      } finally {
        await close()
      }
    })

    it('config document and publish/subscribe', async () => {
      const clock = { t: 1_700_000_000_000 }
      const { backend: b, close } = await make(clock)
      try {
        assert.equal(await b.readConfig(), null)
        await b.writeConfig('{"x":1}')
        assert.equal(await b.readConfig(), '{"x":1}')
        const got: string[] = []
        await b.subscribe('{gw}:test-channel', (m) => got.push(m))
        await b.publish('{gw}:test-channel', 'hello')
        await b.publish('{gw}:other-channel', 'not this')
        const deadline = Date.now() + 2000
        while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
        assert.deepEqual(got, ['hello'])
      } finally {
        await close()
      }
    })
  })
}

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

cases('the primary of --workers (ClusterState over IPC)', async (clock) => {
  const dir = tempDir('gw-state-')
  dirs.push(dir)
  const state = new ClusterState({ stateDir: dir, now: () => clock.t })
  const pair = ipcPair(state)
  return { backend: pair.backend, extra: pair, close: async () => { await pair.backend.close(); await state.flush() } }
})

let redis: RedisServer | undefined
cases('Redis (Lua scripts)', async (clock) => {
  redis ??= await startRedis()
  redis.cli('flushall')
  const conn = await connectRedis(redis.url, () => {})
  return { backend: new RedisBackend(conn, () => clock.t), close: () => conn.close() }
}, REDIS_SKIP)
after(async () => {
  await redis?.close()
})

describe('IpcBackend', () => {
  it('a call the primary does not answer fails after the timeout, as a Redis call to a Redis away', async () => {
    const backend = IpcBackend.connect({ send: () => true, on: () => undefined, off: () => undefined }, 100)
    await assert.rejects(backend.ownerOf('name', 'x'), /did not answer within 100 ms/)
    await backend.close()
  })

  it('outside a worker it refuses to start with GW_ERR_RELAY_WORKER_STATE', () => {
    assert.throws(() => IpcBackend.connect({ on: () => undefined, off: () => undefined }), (err: { code?: string }) => err.code === 'GW_ERR_RELAY_WORKER_STATE')
  })

  it('names.json: the primary keeps the owners across a restart', async () => {
    const dir = tempDir('gw-state-restart-')
    dirs.push(dir)
    const first = new ClusterState({ stateDir: dir })
    assert.equal(first.claim('name', 'kept', 'token:a', 'claim', 256), 'OK')
    assert.equal(first.claim('port', '20005', 'token:a', 'random', 256), 'OK')
    await first.flush()
    const second = new ClusterState({ stateDir: dir })
    assert.equal(second.claim('name', 'kept', 'token:b', 'claim', 256), 'TAKEN')
    assert.equal(second.ownerOf('port', '20005'), 'token:a')
  })
})
