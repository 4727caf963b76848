/**
 * forward-internal and http-request to an internal endpoint (`https://api.internal`)
 * that another agent of the same authtoken serves, through a real relay, two or three
 * real agents and real upstreams: ngrok's "internal endpoints" across agents. Another
 * token's agents cannot reach it; the relay tells agents when it comes and goes (a
 * forward-internal with `on_error: continue` falls back at once); loops across agents are
 * cut; a stream an agent opens that is not an internal request is reset.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent, type AgentEndpointOptions } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import { AGENT_PATH, createWebSocketTransport, MessageReader, MessageType, PROTOCOL_VERSION, Session, writeJsonMessage } from '@gw/protocol'
import { spawnGw, tempDir, waitFor } from '../helpers/stack.js'

const TOKEN_1 = 'internal-token-one'
const TOKEN_2 = 'internal-token-two'

let relay: Relay
let stateDir: string
/** Answers with what it got: tag, method, url, headers, the body's sha256 and length. */
let service: { url: string; server: Server; hits: number }
let pub: { url: string; server: Server; hits: number }

async function echo(tag: string): Promise<{ url: string; server: Server; hits: number }> {
  const state = { url: '', server: undefined as unknown as Server, hits: 0 }
  state.server = createServer((req, res) => {
    state.hits++
    const hash = createHash('sha256')
    let size = 0
    req.on('data', (c: Buffer) => {
      hash.update(c)
      size += c.length
    })
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ tag, method: req.method, url: req.url, headers: req.headers, sha256: hash.digest('hex'), size }))
    })
  })
  await new Promise<void>((r) => state.server.listen(0, '127.0.0.1', r))
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}`
  return state
}

before(async () => {
  stateDir = tempDir('gw-internal-agents-')
  relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir, authtokens: [TOKEN_1, TOKEN_2] })
  service = await echo('service')
  pub = await echo('public')
})
after(async () => {
  await relay.close()
  for (const u of [service, pub]) {
    u.server.closeAllConnections()
    await new Promise<void>((r) => u.server.close(() => r()))
  }
  rmSync(stateDir, { recursive: true, force: true })
})

/** The agent that serves `api.internal` (and a public endpoint of its own). */
async function serving(authtoken = TOKEN_1, host = 'api.internal'): Promise<Agent> {
  return startAgent({
    relay: relay.httpUrl!, authtoken, endpoints: [
      { upstream: pub.url },
      {
        name: 'api', upstream: service.url, internalHost: host, policy: compilePolicy({
          on_http_request: [
            { expressions: ["req.url.path == '/secret'"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
            { actions: [{ type: 'add-headers', config: { headers: { 'x-served-by': 'agent-b', 'x-client-ip': '${conn.client_ip}' } } }] },
          ],
          on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-inner': 'yes' } } }] }],
        }),
      },
    ],
  })
}

/** An agent whose public endpoint forwards to `target`; `fallback` adds ngrok's on_error: continue + custom-response. */
async function forwarding(authtoken: string, target = 'https://api.internal', fallback = false, extra: AgentEndpointOptions[] = []): Promise<Agent> {
  const policy = compilePolicy({
    on_http_request: [{
      actions: [
        { type: 'forward-internal', config: { url: target, ...(fallback ? { on_error: 'continue' } : {}) } },
        ...(fallback ? [{ type: 'custom-response', config: { status_code: 503, body: 'api is down' } }] : []),
      ],
    }],
    on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-edge': 'agent-a' } } }] }],
  })
  return startAgent({ relay: relay.httpUrl!, authtoken, endpoints: [{ upstream: pub.url, policy }, ...extra] })
}

function hostOf(agent: Agent): string {
  return `${agent.tunnels[0]!.publicName}.localhost`
}

async function get(agent: Agent, path: string, init: { method?: string; body?: Buffer } = {}) {
  const res = await request(`${relay.httpUrl}${path}`, { method: (init.method ?? 'GET') as 'GET', headers: { host: hostOf(agent) }, ...(init.body ? { body: init.body } : {}) })
  const text = await res.body.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.statusCode, headers: res.headers, text, json }
}

/** The forwarding agent has heard from the relay that `host` is online (or not). */
async function until(agent: Agent, path: string, ok: (status: number) => boolean): Promise<void> {
  await waitFor(async () => ok((await get(agent, path)).status), 10_000, `the relay's list of internal endpoints reaching agent A (${path})`)
}

test('forward-internal reaches another agent\'s internal endpoint of the same token: its policy and upstream answer, both response phases run, a 4 MiB body both ways is intact', async () => {
  const b = await serving()
  const a = await forwarding(TOKEN_1)
  try {
    await until(a, '/', (s) => s === 200)
    const before = service.hits
    const res = await get(a, '/orders?id=7')
    assert.equal(res.status, 200, res.text)
    assert.equal(res.json.tag, 'service')
    assert.equal(res.json.url, '/orders?id=7')
    assert.equal(res.json.headers['x-served-by'], 'agent-b', 'agent B\'s request phase ran')
    assert.equal(res.json.headers['x-client-ip'], '127.0.0.1', 'agent B sees the original client')
    assert.equal(res.json.headers.host, hostOf(a), 'Host stays the public one')
    assert.equal(res.headers['x-inner'], 'yes', 'agent B\'s response phase ran')
    assert.equal(res.headers['x-edge'], 'agent-a', 'agent A\'s response phase ran on the answer')
    assert.equal(service.hits, before + 1)

    const denied = await get(a, '/secret')
    assert.equal(denied.status, 403, 'agent B\'s deny answers through agent A')
    assert.equal(service.hits, before + 1, 'a denied request never reached the upstream')

    const big = randomBytes(4 * 1024 * 1024)
    const up = await get(a, '/upload', { method: 'POST', body: big })
    assert.equal(up.status, 200)
    assert.equal(up.json.size, big.length)
    assert.equal(up.json.sha256, createHash('sha256').update(big).digest('hex'))
  } finally {
    await a.close()
    await b.close()
  }
  await waitFor(() => relay.openStreams() === 0, 5_000, 'the relay\'s streams to close')
})

test('another token\'s agent does not reach the internal endpoint: 502 GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND, nothing reaches the upstream', async () => {
  const b = await serving(TOKEN_1)
  const same = await forwarding(TOKEN_1)
  const other = await forwarding(TOKEN_2)
  try {
    await until(same, '/', (s) => s === 200)
    const before = service.hits
    const res = await get(other, '/x')
    assert.equal(res.status, 502)
    assert.equal(res.headers['gw-error-code'], 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND')
    assert.equal(service.hits, before)
  } finally {
    await Promise.all([same.close(), other.close(), b.close()])
  }
})

test('the relay says when the internal endpoint comes and goes: on_error: continue falls back while it is away, and forwards once it is back', async () => {
  const a = await forwarding(TOKEN_1, 'https://api.internal', true)
  try {
    const away = await get(a, '/')
    assert.equal(away.status, 503)
    assert.equal(away.text, 'api is down')
    const b = await serving()
    await until(a, '/', (s) => s === 200)
    assert.equal((await get(a, '/')).json.tag, 'service')
    await b.close()
    await until(a, '/', (s) => s === 503)
    assert.equal((await get(a, '/')).text, 'api is down')
  } finally {
    await a.close()
  }
})

test('http-request to another agent\'s internal endpoint reads its answer', async () => {
  const b = await serving()
  const a = await startAgent({
    relay: relay.httpUrl!, authtoken: TOKEN_1, endpoints: [{
      upstream: pub.url, policy: compilePolicy({
        on_http_request: [
          { actions: [{ type: 'http-request', config: { url: 'https://api.internal/lookup?user=1', method: 'GET', on_error: 'halt' } }] },
          { actions: [{ type: 'custom-response', config: { status_code: 200, body: '${actions.ngrok.http_request.res.status_code} ${actions.ngrok.http_request.res.body}' } }] },
        ],
      }),
    }],
  })
  try {
    await waitFor(async () => (await get(a, '/')).text.startsWith('200 '), 10_000, 'the http-request to reach agent B')
    const res = await get(a, '/')
    const [status, ...rest] = res.text.split(' ')
    assert.equal(status, '200')
    const body = JSON.parse(rest.join(' '))
    assert.equal(body.tag, 'service')
    assert.equal(body.url, '/lookup?user=1')
  } finally {
    await a.close()
    await b.close()
  }
})

test('a forward-internal loop across two agents is cut with GW_ERR_POLICY_FORWARD_LOOP', async () => {
  // A's public endpoint → b.internal (on B) → a.internal (on A) → b.internal …
  const loopTo = (url: string) => compilePolicy({ on_http_request: [{ actions: [{ type: 'forward-internal', config: { url } }] }] })
  const b = await startAgent({ relay: relay.httpUrl!, authtoken: TOKEN_1, endpoints: [{ upstream: pub.url }, { name: 'b', upstream: service.url, internalHost: 'b.internal', policy: loopTo('https://a.internal') }] })
  const a = await startAgent({
    relay: relay.httpUrl!, authtoken: TOKEN_1, endpoints: [
      { upstream: pub.url, policy: loopTo('https://b.internal') },
      { name: 'a', upstream: service.url, internalHost: 'a.internal', policy: loopTo('https://b.internal') },
    ],
  })
  try {
    const before = service.hits
    await waitFor(async () => (await get(a, '/')).headers['gw-error-code'] === 'GW_ERR_POLICY_FORWARD_LOOP', 10_000, 'the loop to be cut')
    assert.equal(service.hits, before, 'no hop reached an upstream')
  } finally {
    await a.close()
    await b.close()
  }
  await waitFor(() => relay.openStreams() === 0, 5_000, 'the relay\'s streams to close')
})

test('a stream an admitted agent opens whose first line is not an internal host is reset, and the relay stays up', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${relay.httpPort}${AGENT_PATH}`)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const session = new Session(createWebSocketTransport(ws), { client: true, keepAliveInterval: 0 })
  const control = session.open()
  control.on('error', () => {})
  writeJsonMessage(control, MessageType.HELLO, { version: PROTOCOL_VERSION, authtoken: TOKEN_1, agentId: 'raw', client: 'test', endpoints: [{ proto: 'http' }] })
  const welcome = await new MessageReader(control).next()
  assert.equal(welcome?.type, MessageType.WELCOME)
  for (const line of ['not-a-host\n', 'x'.repeat(400), 'evil.localhost\n']) {
    const extra = session.open()
    extra.write(line)
    const error = await new Promise<Error>((resolve) => extra.on('error', resolve))
    assert.equal((error as Error & { code?: string }).code, 'GW_ERR_MUX_STREAM_RESET', JSON.stringify(line.slice(0, 20)))
  }
  const health = await request(`${relay.httpUrl}/healthz`)
  assert.equal(health.statusCode, 200)
  await health.body.dump()
  session.close()
  ws.terminate()
})

test('two real gw start processes with one authtoken: one serves https://api.internal from its config file, the other forwards to it', async () => {
  const dir = tempDir('gw-internal-cli-')
  writeFileSync(join(dir, 'b.yml'), `version: 3
endpoints:
  - name: home
    upstream: { url: "${pub.url}" }
  - name: api
    url: https://api.internal
    upstream: { url: "${service.url}" }
    traffic_policy:
      on_http_request:
        - actions: [{ type: add-headers, config: { headers: { x-served-by: gw-start-b } } }]
`)
  writeFileSync(join(dir, 'a.yml'), `version: 3
endpoints:
  - name: edge
    upstream: { url: "${pub.url}" }
    traffic_policy:
      on_http_request:
        - expressions: ["req.url.path.startsWith('/api')"]
          actions: [{ type: forward-internal, config: { url: "https://api.internal" } }]
`)
  const env = (file: string) => ({ GW_CONFIG: join(dir, file), GW_RELAY: relay.httpUrl!, GW_AUTHTOKEN: TOKEN_1 })
  const args = ['start', '--all', '--log-format', 'json', '--inspect-addr', '127.0.0.1:0']
  const b = spawnGw(args, env('b.yml'))
  const a = spawnGw(args, env('a.yml'))
  try {
    await b.waitForLine((l) => l.includes('"started tunnel"'))
    const line = await a.waitForLine((l) => l.includes('"started tunnel"') && l.includes('"url":"http://'))
    const host = new URL((JSON.parse(line) as { url: string }).url).host
    const call = async (path: string) => {
      const res = await request(`${relay.httpUrl}${path}`, { headers: { host } })
      return { status: res.statusCode, json: JSON.parse(await res.body.text()) as { tag: string; url: string; headers: Record<string, string> } }
    }
    await waitFor(async () => (await call('/api/users')).json.tag === 'service', 10_000, 'agent A to hear of api.internal')
    const res = await call('/api/users?page=2')
    assert.equal(res.status, 200)
    assert.equal(res.json.url, '/api/users?page=2')
    assert.equal(res.json.headers['x-served-by'], 'gw-start-b')
    assert.equal((await call('/home')).json.tag, 'public')
  } finally {
    a.kill()
    b.kill()
    await Promise.all([a.exited, b.exited])
    rmSync(dir, { recursive: true, force: true })
  }
})

test('gw http <port> --url https://svc.internal: an agent with an internal endpoint only (no public name); an agent of its token forwards to it; its agent API lists the internal URL', async () => {
  const dir = tempDir('gw-internal-only-')
  const b = spawnGw(['http', service.url, '--url', 'https://svc.internal', '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'],
    { GW_CONFIG: join(dir, 'gw.yml'), GW_RELAY: relay.httpUrl!, GW_AUTHTOKEN: TOKEN_1 })
  const a = await forwarding(TOKEN_1, 'https://svc.internal', true)
  try {
    const started = JSON.parse(await b.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string; addr: string }
    assert.equal(started.url, 'https://svc.internal')
    const api = (JSON.parse(await b.waitForLine((l) => l.includes('"msg":"agent API"'))) as { url: string }).url
    await until(a, '/x', (s) => s === 200)
    const res = await get(a, '/orders?id=8')
    assert.equal(res.json.tag, 'service')
    assert.equal(res.json.url, '/orders?id=8')
    // The internal-only agent holds no public name on the relay.
    assert.ok(!relay.onlineNames().some((n) => n.includes("svc")), `relay names: ${relay.onlineNames().join(", ")}`)

    const tunnels = (await (await fetch(`${api}/api/tunnels`)).json()) as { tunnels: Array<{ name: string; public_url: string; proto: string; config: { addr: string } }> }
    assert.deepEqual(tunnels.tunnels.map((t) => [t.name, t.public_url, t.proto, t.config.addr]), [['command_line', 'https://svc.internal', 'https', service.url]])
    const endpoints = (await (await fetch(`${api}/api/endpoints`)).json()) as { endpoints: Array<{ name: string; url: string }> }
    assert.deepEqual(endpoints.endpoints.map((e) => [e.name, e.url]), [['command_line', 'https://svc.internal']])
    const one = await fetch(`${api}/api/endpoints/command_line`)
    assert.equal(one.status, 200)
    // ngrok's POST /api/endpoints with an internal URL starts one more, reached the same way.
    const posted = await fetch(`${api}/api/endpoints`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'two', url: 'https://two.internal', upstream: { url: pub.url } }) })
    assert.equal(posted.status, 201, await posted.clone().text())
    assert.equal(((await posted.json()) as { url: string }).url, 'https://two.internal')
    const viaTwo = await forwarding(TOKEN_1, 'https://two.internal', true)
    try {
      await until(viaTwo, '/y', (s) => s === 200)
      assert.equal((await get(viaTwo, '/y')).json.tag, 'public')
    } finally {
      await viaTwo.close()
    }
  } finally {
    await a.close()
    b.kill()
    await b.exited
    rmSync(dir, { recursive: true, force: true })
  }
  // Gone: agent A's fallback answers at once.
  const c = await forwarding(TOKEN_1, 'https://svc.internal', true)
  try {
    assert.equal((await get(c, '/')).status, 503)
  } finally {
    await c.close()
  }
})

test('--binding internal needs a *.internal URL, and an internal URL takes no public-only flags', async () => {
  const run = async (args: string[]) => {
    const p = spawnGw(args, { GW_RELAY: relay.httpUrl!, GW_AUTHTOKEN: TOKEN_1 })
    const code = await p.exited
    return { code, stderr: p.stderr() }
  }
  const noUrl = await run(['http', '3000', '--binding', 'internal', '--no-tui'])
  assert.equal(noUrl.code, 2)
  assert.match(noUrl.stderr, /--binding internal needs --url https:\/\/<name>\.internal: forward-internal and http-request find it by that URL/)
  const clash = await run(['http', '3000', '--url', 'https://svc.internal', '--pooling-enabled', '--no-tui'])
  assert.equal(clash.code, 2)
  assert.match(clash.stderr, /--url "https:\/\/svc\.internal" is an internal endpoint, which has no public name .*; drop --pooling-enabled/)
  const tcp = await run(['tcp', '22', '--binding', 'internal'])
  assert.equal(tcp.code, 2)
  assert.match(tcp.stderr, /--binding internal needs --url tcp:\/\/<name>\.internal:<port>: forward-internal finds it by that URL/)
})

test('a WebSocket through forward-internal to another agent\'s internal endpoint: upgraded through both agents and the relay, messages both ways, the other agent\'s policy runs on the upgrade; a refused upgrade comes back as a response', async () => {
  const seen: Array<Record<string, unknown>> = []
  const server = createServer((req, res) => {
    res.statusCode = 426
    res.end('upgrade required')
  })
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  wss.on('connection', (sock, req) => {
    seen.push({ url: req.url, headers: req.headers })
    sock.on('message', (data, binary) => sock.send(binary ? data : `echo:${String(data)}`, { binary }))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const b = await startAgent({
    relay: relay.httpUrl!, authtoken: TOKEN_1, endpoints: [{
      upstream: pub.url, internalHost: 'ws.internal', policy: compilePolicy({
        on_http_request: [
          { expressions: ["req.url.path == '/denied'"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
          { actions: [{ type: 'add-headers', config: { headers: { 'x-served-by': 'agent-b' } } }, { type: 'forward', config: { url: upstream } }] },
        ],
      }),
    }],
  })
  const a = await forwarding(TOKEN_1, 'https://ws.internal', true)
  try {
    await until(a, '/x', (s) => s !== 503)
    const ws = new WebSocket(`ws://127.0.0.1:${relay.httpPort}/chat?room=1`, { headers: { host: hostOf(a) } })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected ${res.statusCode}`)))
    })
    const replies: string[] = []
    const got = new Promise<void>((resolve) => ws.on('message', (data) => {
      replies.push(String(data))
      if (replies.length === 3) resolve()
    }))
    for (const m of ['one', 'two', 'x'.repeat(200_000)]) ws.send(m)
    await got
    assert.deepEqual(replies.map((r) => r.slice(0, 12)), ['echo:one', 'echo:two', 'echo:xxxxxxx'])
    assert.equal(replies[2]!.length, 200_005)
    ws.close()
    assert.equal(seen[0]!.url, '/chat?room=1')
    assert.equal((seen[0]!.headers as Record<string, string>)['x-served-by'], 'agent-b', 'agent B\'s request phase ran on the upgrade')
    // A refused upgrade (agent B's deny) is an ordinary response.
    const denied = new WebSocket(`ws://127.0.0.1:${relay.httpPort}/denied`, { headers: { host: hostOf(a) } })
    const status = await new Promise<number>((resolve) => {
      denied.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      denied.once('open', () => resolve(101))
      denied.once('error', () => {})
    })
    assert.equal(status, 403)
  } finally {
    await a.close()
    await b.close()
    for (const c of wss.clients) c.terminate()
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  }
  await waitFor(() => relay.openStreams() === 0, 5_000, 'the relay\'s streams to close')
})
