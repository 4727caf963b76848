/**
 * Internal endpoints (`https://svc.internal`, ngrok's forward-internal) across a cluster,
 * with the real binaries: agent A (a public endpoint whose policy forwards to
 * svc.internal) on one relay, agent B (`gw http … --url https://svc.internal`) on another.
 *
 * - two spawned `gw relay --redis … --workers 1` on one real redis-server (started by the
 *   test on a free port): A on relay 1, B on relay 2;
 * - one spawned `gw relay --workers 2` without Redis (state in the primary): A and B on
 *   different workers (B is started again until it lands on the other one).
 *
 * Each checks: a request to A's public URL is answered by B's upstream (a GET, a 4 MiB POST
 * intact, a response streamed: its first piece reaches the client before the upstream
 * writes the rest), a WebSocket echo through it; the relay lists svc.internal to an agent
 * of the token on relay 1 (INTERNAL_ENDPOINTS) and not to another token's, whose
 * forward-internal gets 502 GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND and whose raw stream
 * for svc.internal gets GW_ERR_INTERNAL_ENDPOINT_OFFLINE (the same raw stream of the right
 * token is answered by B); B leaving: every request ends with 502 and a documented code,
 * and the list drops svc.internal. And a tcp internal endpoint (`gw tcp … --url
 * tcp://camera.internal:22`) on relay 2 reached from A's public tcp endpoint on relay 1;
 * and kill -9 of B's relay: B moves to relay 1 and A reaches it again, every request
 * meanwhile ending with 200 or a documented 502.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import {
  AGENT_PATH, checkInternalEndpoints, createWebSocketTransport, decodeJson, MessageReader, MessageType, MessageWriter, PROTOCOL_VERSION, Session, writeJsonMessage,
  type InternalEndpoints, type ResponseHead,
} from '@gw/protocol'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import { freePortBlock, spawnGw, startUpstream, tempDir, waitFor, type Spawned, type Upstream } from '../helpers/stack.js'
import { REDIS_SKIP, startRedis, type RedisServer } from '../helpers/redis.js'
import { exchange, portOf, sha256, startTcpServer } from '../helpers/tcp.js'

const TOKEN_1 = 'cluster-internal-token-1-0123456789'
const TOKEN_2 = 'cluster-internal-token-2-0123456789'
const SECRET = 'cluster-internal-secret-0123456789'
/** The codes docs/errors.md gives for a forward-internal whose internal endpoint is gone. */
const GONE = ['GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND', 'GW_ERR_INTERNAL_ENDPOINT_OFFLINE']

interface Started { http_port: number; cluster: string; worker?: number }

function startedLines(relay: Spawned): Started[] {
  return relay.lines.filter((l) => l.includes('"relay started"')).map((l) => JSON.parse(l) as Started)
}

/** B's upstream: JSON of what it got; /stream holds its second piece until /release; a WebSocket echo. */
async function service(): Promise<{ up: Upstream; release(): void }> {
  let release: () => void = () => {}
  const up = await startUpstream((req, res) => {
    if (req.url === '/release') {
      release()
      return void res.end('released')
    }
    if (req.url === '/stream') {
      res.setHeader('content-type', 'text/plain')
      res.write('first|')
      const held = new Promise<void>((resolve) => { release = resolve })
      return void held.then(() => res.end('second'))
    }
    const hash = createHash('sha256')
    let size = 0
    req.on('data', (c: Buffer) => {
      hash.update(c)
      size += c.length
    })
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ tag: 'service', method: req.method, url: req.url, sha256: hash.digest('hex'), size }))
    })
  })
  const wss = new WebSocketServer({ server: up.server, perMessageDeflate: false })
  wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(binary ? m : `echo:${String(m)}`, { binary })))
  return { up, release: () => release() }
}

/** An agent session by hand, as an agent speaks it: for the relay's list and for raw internal streams. */
async function rawAgent(relayUrl: string, authtoken: string) {
  const ws = new WebSocket(`${relayUrl.replace('http', 'ws')}${AGENT_PATH}`)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const session = new Session(createWebSocketTransport(ws), { client: true, keepAliveInterval: 0 })
  const control = session.open()
  control.on('error', () => {})
  writeJsonMessage(control, MessageType.HELLO, { version: PROTOCOL_VERSION, authtoken, agentId: `raw-${authtoken.slice(-6)}`, client: 'test', endpoints: [{ proto: 'http' }] })
  const reader = new MessageReader(control)
  const welcome = await reader.next()
  assert.equal(welcome?.type, MessageType.WELCOME)
  const lists: InternalEndpoints[] = []
  void (async () => {
    for (;;) {
      const m = await reader.next().catch(() => null)
      if (!m) return
      if (m.type === MessageType.INTERNAL_ENDPOINTS) lists.push(checkInternalEndpoints(decodeJson(m.payload, 'internal endpoints')))
    }
  })()
  return {
    /** The hosts of the relay's last INTERNAL_ENDPOINTS (none yet: []). */
    hosts: (): string[] => (lists.at(-1)?.endpoints ?? []).map((e) => e.host),
    lists,
    /** A stream as remote-internal.ts opens one: the host on a line, then a GET. */
    async get(host: string, path: string): Promise<{ status: number; code: string | undefined; body: string }> {
      const stream = session.open()
      stream.on('error', () => {})
      stream.write(`${host}\n`)
      new MessageWriter(stream).requestWithoutBody({
        method: 'GET', target: path, httpVersion: '1.1', rawHeaders: ['host', host], remoteAddress: '127.0.0.1', remotePort: 1,
        scheme: 'https', tunnel: host, receivedAt: Date.now(), upgrade: false, expectContinue: false, hasBody: false,
      })
      const r = new MessageReader(stream)
      const head = await r.next()
      assert.equal(head?.type, MessageType.RESPONSE_HEAD)
      const parsed = decodeJson(head!.payload, 'response head') as ResponseHead
      let body = ''
      if (!parsed.error) for await (const chunk of r.body()) body += String(chunk)
      return { status: parsed.status, code: parsed.error?.code, body }
    },
    close(): void {
      session.close()
      ws.terminate()
    },
  }
}

/** A's endpoint: everything to https://svc.internal (on_error: halt, the default). */
function forwardingPolicy() {
  return compilePolicy({ on_http_request: [{ actions: [{ type: 'forward-internal', config: { url: 'https://svc.internal' } }] }] })
}

/** B: the real `gw http`, internal only. */
function spawnB(dir: string, relayUrl: string, upstream: Upstream): Spawned {
  return spawnGw(['http', upstream.url, '--url', 'https://svc.internal', '--relay', relayUrl, '--authtoken', TOKEN_1, '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'],
    { GW_CONFIG: join(dir, 'gw-b.yml') })
}

/**
 * The checks both clusters share. `clientUrl`: where clients reach A's public name;
 * `sideUrl`: a relay (or the one port) agents of each token connect to by hand; `b`: B,
 * running, and how to stop it.
 */
async function exercise(opts: {
  clientUrl: string
  sideUrl: string
  publicHost: string
  svc: { up: Upstream; release(): void }
  pub: Upstream
  stopB(): Promise<void>
  redis?: RedisServer
}): Promise<void> {
  const { clientUrl, publicHost } = opts
  const get = async (path: string, init: { method?: 'POST'; body?: Buffer } = {}) => {
    // A bound on each answer: B leaving must not leave a request hanging.
    const res = await request(`${clientUrl}${path}`, { method: init.method ?? 'GET', headers: { host: publicHost }, headersTimeout: 20_000, bodyTimeout: 20_000, ...(init.body ? { body: init.body } : {}) })
    const text = await res.body.text()
    let json: { tag?: string; url?: string; size?: number; sha256?: string } | undefined
    try {
      json = JSON.parse(text) as typeof json
    } catch { /* an error page */ }
    return { status: res.statusCode, code: res.headers['gw-error-code'] as string | undefined, text, json }
  }
  await waitFor(async () => (await get('/ready')).json?.tag === 'service', 20_000, 'agent A to reach svc.internal on the other relay')

  // Plain HTTP, and a 4 MiB body both ways intact.
  const res = await get('/orders?id=7')
  assert.equal(res.status, 200, res.text)
  assert.equal(res.json?.url, '/orders?id=7')
  const big = randomBytes(4 * 1024 * 1024)
  const up = await get('/upload', { method: 'POST', body: big })
  assert.equal(up.status, 200, up.text)
  assert.equal(up.json?.size, big.length)
  assert.equal(up.json?.sha256, createHash('sha256').update(big).digest('hex'))

  // A streamed answer: its first piece arrives while the upstream still holds the rest
  // (a hop that buffered the whole body would never give it, and the wait would fail).
  const streamed = await request(`${clientUrl}/stream`, { headers: { host: publicHost }, headersTimeout: 20_000, bodyTimeout: 20_000 })
  assert.equal(streamed.statusCode, 200)
  let got = ''
  const body = streamed.body
  body.on('data', (c: Buffer) => { got += String(c) })
  await waitFor(() => got === 'first|', 15_000, 'the first piece before the upstream writes the rest')
  opts.svc.release()
  await new Promise<void>((resolve) => body.once('end', resolve))
  assert.equal(got, 'first|second')

  // A WebSocket through forward-internal, to B's upstream.
  const ws = new WebSocket(`${clientUrl.replace('http', 'ws')}/chat`, { headers: { host: publicHost } })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, r) => reject(new Error(`unexpected ${r.statusCode} ${String(r.headers['gw-error-code'])}`)))
  })
  const replies: string[] = []
  const three = new Promise<void>((resolve) => ws.on('message', (m) => {
    replies.push(String(m))
    if (replies.length === 3) resolve()
  }))
  for (const m of ['one', 'two', 'x'.repeat(100_000)]) ws.send(m)
  await three
  assert.deepEqual(replies.map((r) => r.slice(0, 10)), ['echo:one', 'echo:two', 'echo:xxxxx'])
  assert.equal(replies[2]!.length, 100_005)
  ws.close()

  // The token's agents are told of svc.internal on any relay; another token's are not,
  // cannot reach it by policy, nor by a raw stream the relay must refuse.
  const mine = await rawAgent(opts.sideUrl, TOKEN_1)
  const theirs = await rawAgent(opts.sideUrl, TOKEN_2)
  const other: Agent = await startAgent({ relay: opts.sideUrl, authtoken: TOKEN_2, endpoints: [{ upstream: opts.pub.url, publicName: 'other-edge', policy: forwardingPolicy() }] })
  try {
    await waitFor(() => mine.hosts().includes('svc.internal'), 10_000, 'the relay to list svc.internal to an agent of its token')
    const direct = await mine.get('svc.internal', '/raw?x=1')
    assert.equal(direct.status, 200, JSON.stringify(direct))
    assert.equal((JSON.parse(direct.body) as { url: string }).url, '/raw?x=1')

    const refused = await theirs.get('svc.internal', '/raw')
    assert.equal(refused.code, 'GW_ERR_INTERNAL_ENDPOINT_OFFLINE', JSON.stringify(refused))
    assert.equal(refused.status, 502)
    assert.ok(!theirs.lists.some((l) => l.endpoints.some((e) => e.host === 'svc.internal')), 'another token is never told of it')
    const viaPolicy = await request(`${opts.sideUrl}/x`, { headers: { host: `other-edge.tunnel.test` }, headersTimeout: 20_000 })
    await viaPolicy.body.dump()
    assert.equal(viaPolicy.statusCode, 502)
    assert.equal(viaPolicy.headers['gw-error-code'], 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND')

    if (opts.redis) assert.match(opts.redis.cli('zrange', '{gw}:int-live', '0', '-1'), /^token:[0-9a-f]{64} svc\.internal$/)

    // B leaves: every request ends, with 502 and a documented code; the list drops it.
    await opts.stopB()
    const codes = new Set<string>()
    await waitFor(async () => {
      const r = await get('/after')
      assert.equal(r.status, 502, r.text)
      assert.ok(GONE.includes(r.code ?? ''), `code ${r.code}`)
      codes.add(r.code!)
      return r.code === 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND'
    }, 20_000, 'agent A to hear that svc.internal is gone')
    await waitFor(() => !mine.hosts().includes('svc.internal'), 10_000, 'the relay to drop svc.internal from its list')
    if (opts.redis) await waitFor(() => opts.redis!.cli('zcard', '{gw}:int-live') === '0', 10_000, 'the live list in Redis to empty')
    const gone = await mine.get('svc.internal', '/raw')
    assert.equal(gone.code, 'GW_ERR_INTERNAL_ENDPOINT_OFFLINE')
  } finally {
    mine.close()
    theirs.close()
    await other.close()
  }
}

describe('internal endpoints across two relays on Redis', { skip: REDIS_SKIP }, () => {
  it('A on relay 1 forwards to B\'s https://svc.internal on relay 2: HTTP, bodies, streaming, WebSocket; another token cannot; B leaving is a 502, not a hang', async () => {
    const dir = tempDir('gw-cluster-internal-')
    const redis = await startRedis()
    const svc = await service()
    const pub = await startUpstream((_req, res) => res.end('public upstream'))
    const procs: Spawned[] = []
    let a: Agent | undefined
    try {
      const relay = (name: string): Spawned => spawnGw(
        ['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, name),
          '--authtoken', TOKEN_1, '--authtoken', TOKEN_2, '--redis', redis.url, '--workers', '1', '--log-format', 'json'],
        { GW_RELAY_CLUSTER_SECRET: SECRET })
      const r1 = relay('r1')
      const r2 = relay('r2')
      procs.push(r1, r2)
      await waitFor(() => startedLines(r1).length === 1 && startedLines(r2).length === 1, 60_000, 'both relays started')
      const url1 = `http://127.0.0.1:${startedLines(r1)[0]!.http_port}`
      const url2 = `http://127.0.0.1:${startedLines(r2)[0]!.http_port}`

      const b = spawnB(dir, url2, svc.up)
      procs.push(b)
      const line = JSON.parse(await b.waitForLine((l) => l.includes('"started tunnel"'), 30_000)) as { url: string }
      assert.equal(line.url, 'https://svc.internal')
      a = await startAgent({ relay: url1, authtoken: TOKEN_1, endpoints: [{ upstream: pub.url, publicName: 'edge', policy: forwardingPolicy() }] })
      // B's agent is relay 2's alone: relay 1 never saw it.
      assert.ok(!r1.lines.some((l) => l.includes('"agent connected"') && l.includes('"names":[]')), 'B is not on relay 1')
      assert.ok(r2.lines.some((l) => l.includes('"agent connected"')), 'B is on relay 2')

      await exercise({
        clientUrl: url1, sideUrl: url1, publicHost: 'edge.tunnel.test', svc, pub, redis,
        stopB: async () => {
          b.kill('SIGTERM')
          await b.exited
        },
      })
      // The public name through relay 2 still reaches A (and A's forward-internal answers it).
      const through2 = await request(`${url2}/via-2`, { headers: { host: 'edge.tunnel.test' }, headersTimeout: 20_000 })
      await through2.body.dump()
      assert.equal(through2.statusCode, 502)
      assert.equal(through2.headers['gw-error-code'], 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND')
    } finally {
      await a?.close()
      for (const p of procs) p.kill('SIGKILL')
      await Promise.all(procs.map((p) => p.exited))
      await svc.up.close()
      await pub.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('internal endpoints when the relay holding them dies', { skip: REDIS_SKIP }, () => {
  it('kill -9 of relay 2 (B\'s): B reconnects to relay 1 and A reaches svc.internal again; every request meanwhile ends, 200 or 502 with a documented code', async () => {
    const dir = tempDir('gw-cluster-internal-kill-')
    const redis = await startRedis()
    const svc = await service()
    const pub = await startUpstream((_req, res) => res.end('public upstream'))
    const procs: Spawned[] = []
    let a: Agent | undefined
    try {
      const relay = (name: string): Spawned => spawnGw(
        ['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, name),
          '--authtoken', TOKEN_1, '--redis', redis.url, '--workers', '1', '--log-format', 'json'],
        { GW_RELAY_CLUSTER_SECRET: SECRET })
      const r1 = relay('r1')
      const r2 = relay('r2')
      procs.push(r1, r2)
      await waitFor(() => startedLines(r1).length === 1 && startedLines(r2).length === 1, 60_000, 'both relays started')
      const url1 = `http://127.0.0.1:${startedLines(r1)[0]!.http_port}`
      const url2 = `http://127.0.0.1:${startedLines(r2)[0]!.http_port}`
      // B learns the cluster's relays from its welcome, from a list a relay reads at most once a second.
      await waitFor(() => redis.cli('zcard', '{gw}:relays') === '2', 10_000, 'both relays registered')
      await new Promise((r) => setTimeout(r, 1_100))
      const b = spawnB(dir, url2, svc.up)
      procs.push(b)
      await b.waitForLine((l) => l.includes('"started tunnel"'), 30_000)
      a = await startAgent({ relay: url1, authtoken: TOKEN_1, endpoints: [{ upstream: pub.url, publicName: 'edge', policy: forwardingPolicy() }] })
      const get = async (): Promise<{ status: number; code: string | undefined; tag: string | undefined }> => {
        const res = await request(`${url1}/k`, { headers: { host: 'edge.tunnel.test' }, headersTimeout: 20_000, bodyTimeout: 20_000 })
        const text = await res.body.text()
        let tag: string | undefined
        try {
          tag = (JSON.parse(text) as { tag?: string }).tag
        } catch { /* an error page */ }
        return { status: res.statusCode, code: res.headers['gw-error-code'] as string | undefined, tag }
      }
      await waitFor(async () => (await get()).tag === 'service', 20_000, 'A to reach svc.internal on relay 2')
      assert.ok(r2.lines.some((l) => l.includes('"agent connected"') && l.includes('"names":[]')), 'B is on relay 2')

      r2.child.kill('SIGKILL')
      await r2.exited
      const seen: string[] = []
      await waitFor(async () => {
        const r = await get()
        if (r.tag === 'service') return true
        assert.equal(r.status, 502)
        assert.ok(GONE.includes(r.code ?? ''), `code ${r.code}`)
        seen.push(r.code!)
        return false
      }, 30_000, 'A to reach svc.internal again, through B on relay 1')
      assert.ok(r1.lines.some((l) => l.includes('"agent connected"') && l.includes('"names":[]')), 'B moved to relay 1')
      assert.equal((await get()).tag, 'service')
    } finally {
      await a?.close()
      for (const p of procs) p.kill('SIGKILL')
      await Promise.all(procs.map((p) => p.exited))
      await svc.up.close()
      await pub.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('tcp internal endpoints across two relays on Redis', { skip: REDIS_SKIP }, () => {
  it('A\'s public tcp endpoint on relay 1 forwards each connection to B\'s tcp://camera.internal:22 on relay 2 (1 MiB each way, hashed); another token\'s is closed; B leaving closes, not hangs', async () => {
    const dir = tempDir('gw-cluster-tcp-internal-')
    const redis = await startRedis()
    const answer = randomBytes(1024 * 1024)
    // Reads to the client's FIN, answers the hash of what it got, a newline, then 1 MiB of its own.
    const hasher = await startTcpServer((socket) => {
      const chunks: Buffer[] = []
      socket.on('data', (d: Buffer) => chunks.push(d))
      socket.on('end', () => socket.end(Buffer.concat([Buffer.from(`${sha256(Buffer.concat(chunks))}\n`), answer])))
    })
    const own = await startTcpServer((socket) => socket.end('own upstream\n'))
    const procs: Spawned[] = []
    const agents: Agent[] = []
    try {
      const min = await freePortBlock(4, ['127.0.0.1', '127.0.0.2'])
      const relay = (host: string, name: string): Spawned => spawnGw(
        ['relay', '--domain', 'tunnel.test', '--host', host, '--http-port', '0', '--https-port', '-1', '--tcp-ports', `${min}-${min + 3}`, '--state-dir', join(dir, name),
          '--authtoken', TOKEN_1, '--authtoken', TOKEN_2, '--redis', redis.url, '--workers', '1', '--log-format', 'json'],
        { GW_RELAY_CLUSTER_SECRET: SECRET })
      const r1 = relay('127.0.0.1', 'r1')
      const r2 = relay('127.0.0.2', 'r2')
      procs.push(r1, r2)
      await waitFor(() => startedLines(r1).length === 1 && startedLines(r2).length === 1, 60_000, 'both relays started')
      const url1 = `http://127.0.0.1:${startedLines(r1)[0]!.http_port}`
      const url2 = `http://127.0.0.2:${startedLines(r2)[0]!.http_port}`
      const b = spawnGw(['tcp', String(hasher.port), '--url', 'tcp://camera.internal:22', '--relay', url2, '--authtoken', TOKEN_1, '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'],
        { GW_CONFIG: join(dir, 'gw-b.yml') })
      procs.push(b)
      await b.waitForLine((l) => l.includes('"started tunnel"'), 30_000)
      const tcpPolicy = (extra: Record<string, unknown> = {}) => compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'forward-internal', config: { url: 'tcp://camera.internal:22', ...extra } }] }] }, { kind: 'tcp' })
      const a = await startAgent({ relay: url1, authtoken: TOKEN_1, endpoints: [{ proto: 'tcp', upstream: String(own.port), policy: tcpPolicy() }] })
      agents.push(a)
      const port = portOf(a.tunnels[0]!.publicUrl)
      await waitFor(async () => (await exchange(port, 'ping')).received.subarray(0, 64).toString() === sha256(Buffer.from('ping')), 20_000, 'A to reach camera.internal on relay 2')
      const sent = randomBytes(1024 * 1024)
      const got = await exchange(port, sent)
      assert.equal(got.ending, 'end')
      const nl = got.received.indexOf(10)
      assert.equal(got.received.subarray(0, nl).toString(), sha256(sent), 'B\'s upstream got the client\'s 1 MiB intact')
      assert.equal(sha256(got.received.subarray(nl + 1)), sha256(answer), 'the client got B\'s upstream\'s 1 MiB intact')
      assert.equal(own.accepted.length, 0, 'A\'s own upstream was never dialled')

      // Another token: closed (never listed it), and its on_error: continue falls back to its own upstream.
      const c = await startAgent({ relay: url1, authtoken: TOKEN_2, endpoints: [
        { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy() },
        { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy({ on_error: 'continue' }) },
      ] })
      agents.push(c)
      const before = hasher.accepted.length
      assert.equal((await exchange(portOf(c.tunnels[0]!.publicUrl), 'x', { keepOpen: true })).ending, 'ECONNRESET')
      assert.equal((await exchange(portOf(c.tunnels[1]!.publicUrl), 'x')).received.toString(), 'own upstream\n')
      assert.equal(hasher.accepted.length, before, 'another token never reaches B')

      // B leaves: A's connections are closed instead of hanging.
      b.kill('SIGTERM')
      await b.exited
      await waitFor(async () => (await exchange(port, 'x', { keepOpen: true })).ending === 'ECONNRESET', 20_000, 'the connection to be closed once B left')
    } finally {
      await Promise.all(agents.map((x) => x.close()))
      for (const p of procs) p.kill('SIGKILL')
      await Promise.all(procs.map((p) => p.exited))
      await hasher.close()
      await own.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('internal endpoints across the workers of gw relay --workers 2 (no Redis)', () => {
  it('A on one worker forwards to B\'s https://svc.internal on the other: HTTP, bodies, streaming, WebSocket; another token cannot; B leaving is a 502, not a hang', async () => {
    const dir = tempDir('gw-workers-internal-')
    const svc = await service()
    const pub = await startUpstream((_req, res) => res.end('public upstream'))
    const relay = spawnGw(['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', join(dir, 'relay'),
      '--authtoken', TOKEN_1, '--authtoken', TOKEN_2, '--workers', '2', '--log-format', 'json'])
    let a: Agent | undefined
    let b: Spawned | undefined
    try {
      await waitFor(() => startedLines(relay).length === 2, 60_000, 'both workers started')
      const url = `http://127.0.0.1:${startedLines(relay)[0]!.http_port}`
      const connected = (): Array<{ worker: number; names: string[] }> =>
        relay.lines.filter((l) => l.includes('"agent connected"')).map((l) => JSON.parse(l) as { worker: number; names: string[] })
      a = await startAgent({ relay: url, authtoken: TOKEN_1, endpoints: [{ upstream: pub.url, publicName: 'edge', policy: forwardingPolicy() }] })
      await waitFor(() => connected().some((c) => c.names.includes('edge')), 10_000, 'A connected')
      const workerA = connected().find((c) => c.names.includes('edge'))!.worker
      // B (internal only: no names) until it lands on the other worker; the primary hands connections out in turn.
      let workerB: number | undefined
      for (let i = 0; i < 8 && workerB === undefined; i++) {
        const before = connected().length
        b = spawnB(dir, url, svc.up)
        await b.waitForLine((l) => l.includes('"started tunnel"'), 30_000)
        await waitFor(() => connected().length > before, 10_000, 'B connected')
        const w = connected().slice(before).find((c) => c.names.length === 0)!.worker
        if (w !== workerA) workerB = w
        else {
          b.kill('SIGTERM')
          await b.exited
        }
      }
      assert.ok(workerB !== undefined && workerB !== workerA, `A on worker ${workerA}, B on ${String(workerB)}`)
      const running = b!
      await exercise({
        clientUrl: url, sideUrl: url, publicHost: 'edge.tunnel.test', svc, pub,
        stopB: async () => {
          running.kill('SIGTERM')
          await running.exited
        },
      })
    } finally {
      await a?.close()
      b?.kill('SIGKILL')
      await b?.exited
      relay.kill('SIGTERM')
      await relay.exited
      await svc.up.close()
      await pub.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
