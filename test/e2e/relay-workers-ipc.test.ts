/**
 * `gw relay --workers 2` without Redis: two relay processes behind one listener
 * (node:cluster) that share names, ports and presence through the primary process
 * (cluster/state.ts over IPC). Real binary, real agents, real sockets:
 *
 * - /metrics (--metrics-addr) is served by the primary, both workers' figures summed;
 * - idle agents are spread over both workers (each worker's "agent connected" lines say
 *   which worker wrote them), and requests for one name, each on a new connection, arrive
 *   through both workers (the access log's `relay` field) and all reach the agent;
 * - SIGHUP to the primary reaches both workers; SIGTERM drains both, and the primary exits 0;
 * - a second token is refused a name the first holds, through either worker, and still
 *   once the agent has gone, and after the whole relay restarted (names.json);
 * - kill -9 of a worker: the primary starts another, the agents it held reconnect and keep
 *   their names;
 * - a `gw tcp` port is served through the workers, and a second token is refused it.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import type { GwError } from '@gw/protocol'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { freePort, freePortBlock, spawnGw, startUpstream, tempDir, waitFor, type Spawned } from '../helpers/stack.js'
import { echo, exchange, startTcpServer } from '../helpers/tcp.js'

const TOKEN_1 = 'workers-ipc-token-one-0123456789'
const TOKEN_2 = 'workers-ipc-token-two-0123456789'

interface Started { http_port: number; cluster: string; worker: number; pid: number }

function started(relay: Spawned): Started[] {
  return relay.lines.filter((l) => l.includes('"relay started"')).map((l) => JSON.parse(l) as Started)
}

/** worker id → the names its agents connected with, from its "agent connected" lines (from line `from` on). */
function heldBy(relay: Spawned, from = 0): Map<number, string[]> {
  const out = new Map<number, string[]>()
  for (const line of relay.lines.slice(from)) {
    if (!line.includes('"agent connected"')) continue
    const { worker, names } = JSON.parse(line) as { worker: number; names: string[] }
    out.set(worker, [...(out.get(worker) ?? []), ...names])
  }
  return out
}

function spawnRelay(stateDir: string, extra: string[] = []): Spawned {
  return spawnGw(['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', stateDir,
    '--authtoken', TOKEN_1, '--authtoken', TOKEN_2, '--workers', '2', '--log-format', 'json', '--access-log', '-', ...extra])
}

async function bothStarted(relay: Spawned, count = 2): Promise<string> {
  await waitFor(() => started(relay).length >= count, 60_000, 'both workers started')
  const ports = new Set(started(relay).map((s) => s.http_port))
  assert.equal(ports.size, 1, 'every worker serves one port')
  return `http://127.0.0.1:${[...ports][0]}`
}

describe('gw relay --workers 2 without Redis (state in the primary)', () => {
  it('spreads agents over both workers, requests for one name arrive through both, names are the first token\'s across workers and restarts', async () => {
    const dir = tempDir('gw-workers-ipc-')
    const upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    const metricsPort = await freePort()
    let relay = spawnRelay(join(dir, 'relay'), ['--metrics-addr', `127.0.0.1:${metricsPort}`])
    const agents: Agent[] = []
    try {
      const url = await bothStarted(relay)
      const ids = new Set(started(relay).map((s) => s.cluster))
      assert.equal(ids.size, 2, 'two workers, two cluster members')

      // Eight idle agents through the one port: the primary hands connections out in turn.
      // Each is reached through both workers as soon as it is welcomed: its names are
      // announced to the primary before the welcome, not after it.
      for (let i = 0; i < 8; i++) {
        agents.push(await startAgent({ relay: url, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: `idle${i}` }] }))
        const first = await Promise.all([0, 1].map(async (k) => {
          const res = await request(`${url}/first${k}`, { headers: { host: `idle${i}.tunnel.test` }, reset: true })
          return `${res.statusCode} ${await res.body.text()}`
        }))
        assert.deepEqual(first, ['200 ok /first0', '200 ok /first1'], `idle${i} right after its welcome`)
      }
      await waitFor(() => [...heldBy(relay).values()].flat().length === 8, 10_000, 'eight agents connected')
      const held = heldBy(relay)
      assert.equal(held.size, 2, `agents per worker: ${JSON.stringify([...held])}`)
      for (const names of held.values()) assert.ok(names.length >= 2, `agents per worker: ${JSON.stringify([...held])}`)

      // Requests for one name, each on a new connection, with the relay's own page between
      // them (the pattern shifts, so both kinds meet both workers).
      for (let i = 0; i < 60; i++) {
        const path = i % 3 === 2 ? '/healthz' : `/r${i}`
        const res = await request(`${url}${path}`, { headers: i % 3 === 2 ? {} : { host: 'idle0.tunnel.test' }, reset: true })
        const body = await res.body.text()
        if (i % 3 === 2) continue
        assert.equal(res.statusCode, 200, body)
        assert.equal(body, `ok /r${i}`)
      }
      await waitFor(() => relay.lines.filter((l) => l.includes('"name":"idle0"')).length >= 40, 5_000, 'the access log lines')
      const through = new Set(relay.lines.filter((l) => l.includes('"name":"idle0"') && l.includes('"status":200')).map((l) => (JSON.parse(l) as { relay: string }).relay))
      assert.deepEqual(through, ids, 'requests for idle0 arrived through both workers')

      // /metrics is the primary's: both workers' figures summed, whichever scrape.
      for (let i = 0; i < 3; i++) {
        const text = await (await request(`http://127.0.0.1:${metricsPort}/metrics`, { reset: true })).body.text()
        assert.equal(/^gw_relay_agents (\d+)$/m.exec(text)?.[1], '8', 'agents of both workers')
        const ok = Number(/^gw_relay_requests_total\{class="2xx"\} (\d+)$/m.exec(text)?.[1])
        assert.ok(ok >= 60, `2xx requests of both workers: ${ok}`)
      }

      // The second token cannot take idle0, through either worker (new connections alternate).
      for (let i = 0; i < 4; i++) {
        await assert.rejects(startAgent({ relay: url, authtoken: TOKEN_2, endpoints: [{ upstream: upstream.url, publicName: 'idle0' }] }), (err: GwError) => err.code === 'GW_ERR_NAME_TAKEN')
      }
      // Nor once idle0's agent has gone: the name stays the first token's.
      await agents.shift()!.close()
      for (let i = 0; i < 2; i++) {
        await assert.rejects(startAgent({ relay: url, authtoken: TOKEN_2, endpoints: [{ upstream: upstream.url, publicName: 'idle0' }] }), (err: GwError) => err.code === 'GW_ERR_NAME_TAKEN')
      }

      // SIGHUP to the primary reaches every worker (without --config: the access log reopened).
      const workerIds = new Set(started(relay).map((s) => s.worker))
      const hupMark = relay.lines.length
      relay.kill('SIGHUP')
      const hupBy = (): Set<number> => new Set(relay.lines.slice(hupMark).filter((l) => l.includes('SIGHUP: access log reopened')).map((l) => (JSON.parse(l) as { worker: number }).worker))
      await waitFor(() => hupBy().size === 2, 10_000, 'SIGHUP in both workers')
      assert.deepEqual(hupBy(), workerIds)

      // The whole relay restarts (SIGTERM: every worker drains, then the primary exits 0);
      // the primary reads names.json again.
      await Promise.all(agents.splice(0).map((a) => a.close()))
      const termMark = relay.lines.length
      relay.kill('SIGTERM')
      assert.equal(await relay.exited, 0, 'the primary exits 0 once its workers drained')
      const drained = new Set(relay.lines.slice(termMark).filter((l) => l.includes('"relay stopped: every request finished"')).map((l) => (JSON.parse(l) as { worker: number }).worker))
      assert.deepEqual(drained, workerIds, 'both workers drained')
      const saved = JSON.parse(readFileSync(join(dir, 'relay', 'names.json'), 'utf8')) as Record<string, { owner: string }>
      assert.ok(saved.idle0 && saved.idle7, `names.json: ${Object.keys(saved).join(',')}`)
      relay = spawnRelay(join(dir, 'relay'))
      const url2 = await bothStarted(relay)
      for (let i = 0; i < 2; i++) {
        await assert.rejects(startAgent({ relay: url2, authtoken: TOKEN_2, endpoints: [{ upstream: upstream.url, publicName: 'idle0' }] }), (err: GwError) => err.code === 'GW_ERR_NAME_TAKEN')
      }
      agents.push(await startAgent({ relay: url2, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: 'idle0' }] }))
      const res = await request(`${url2}/back`, { headers: { host: 'idle0.tunnel.test' }, reset: true })
      assert.equal(await res.body.text(), 'ok /back')
    } finally {
      await Promise.all(agents.map((a) => a.close()))
      relay.kill('SIGTERM')
      await relay.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('kill -9 of a worker: another starts, and the agents it held reconnect with their names', async () => {
    const dir = tempDir('gw-workers-ipc-kill-')
    const upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    const relay = spawnRelay(join(dir, 'relay'), ['--heartbeat-timeout', '3'])
    const agents: Agent[] = []
    try {
      const url = await bothStarted(relay)
      for (let i = 0; i < 6; i++) {
        agents.push(await startAgent({ relay: url, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: `k${i}` }] }))
      }
      await waitFor(() => [...heldBy(relay).values()].flat().length === 6, 10_000, 'six agents connected')
      const victim = started(relay)[0]!
      const lost = heldBy(relay).get(victim.worker) ?? []
      assert.ok(lost.length > 0, `the killed worker holds agents: ${JSON.stringify([...heldBy(relay)])}`)
      const mark = relay.lines.length
      process.kill(victim.pid, 'SIGKILL')

      // The primary starts a third worker; the agents of the dead one reconnect, with their names.
      await waitFor(() => relay.lines.slice(mark).some((l) => l.includes('"relay started"')), 60_000, 'a new worker started')
      await waitFor(() => lost.every((n) => [...heldBy(relay, mark).values()].flat().includes(n)), 30_000, `${lost.join(',')} reconnected`)
      for (let i = 0; i < 6; i++) {
        // Each on a new connection, twice, so both live workers answer for every name.
        for (let j = 0; j < 2; j++) {
          const res = await request(`${url}/after${i}`, { headers: { host: `k${i}.tunnel.test` }, reset: true })
          assert.equal(res.statusCode, 200, `k${i}`)
          assert.equal(await res.body.text(), `ok /after${i}`)
        }
      }
      // The names are still the first token's.
      await assert.rejects(startAgent({ relay: url, authtoken: TOKEN_2, endpoints: [{ upstream: upstream.url, publicName: lost[0]! }] }), (err: GwError) => err.code === 'GW_ERR_NAME_TAKEN')
    } finally {
      await Promise.all(agents.map((a) => a.close()))
      relay.kill('SIGTERM')
      await relay.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a gw tcp port is served through the workers, and a second token is refused it', async () => {
    const dir = tempDir('gw-workers-ipc-tcp-')
    const echoServer = await startTcpServer(echo)
    const min = await freePortBlock(4)
    const relay = spawnRelay(join(dir, 'relay'), ['--tcp-ports', `${min}-${min + 3}`])
    const procs: Spawned[] = [relay]
    try {
      const url = await bothStarted(relay)
      const tcp = spawnGw(['tcp', String(echoServer.port), '--remote-addr', `localhost:${min + 2}`, '--relay', url,
        '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0', '--config', join(dir, 'gw-tcp.yml')], { GW_AUTHTOKEN: TOKEN_1 })
      procs.push(tcp)
      await tcp.waitForLine((l) => l.includes('"started tunnel"'), 30_000)
      await new Promise((r) => setTimeout(r, 500))
      for (let i = 0; i < 20; i++) {
        const got = await exchange(min + 2, `connection ${i}`, { host: '127.0.0.1' })
        assert.equal(got.received.toString(), `connection ${i}`)
      }
      for (let i = 0; i < 2; i++) {
        await assert.rejects(startAgent({ relay: url, authtoken: TOKEN_2, endpoints: [{ proto: 'tcp', upstream: `127.0.0.1:${echoServer.port}`, remotePort: min + 2 }] }), (err: GwError) => err.code === 'GW_ERR_TCP_PORT_TAKEN')
      }
      tcp.kill('SIGTERM')
      await tcp.exited
      assert.ok(existsSync(join(dir, 'relay', 'tcp-ports.json')), 'the port owners are kept in tcp-ports.json')
    } finally {
      for (const p of procs) p.kill('SIGTERM')
      await relay.exited
      await echoServer.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
