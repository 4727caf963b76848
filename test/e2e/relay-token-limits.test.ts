/**
 * Per-token header and body limits at the relay (`limits.header_size`, `limits.body_size`
 * in the relay's config), the token's stream and rate limits applied to upgraded
 * connections, and upgrade requests that carry a body. Real relay, agents, upstream and
 * clients on 127.0.0.1; what the upstream saw is counted, so "refused" means "never
 * forwarded".
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { writeFileSync, rmSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { Pool, request } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { loadRelayConfig, startRelay, type Relay, type TokenEntry } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import type { CodedError } from '@gw/protocol'
import { startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'

const sha = (token: string): string => createHash('sha256').update(token).digest('hex')
const entry = (token: string, limits: TokenEntry['limits']): TokenEntry =>
  ({ label: token, digest: Buffer.from(sha(token), 'hex'), names: [], tcpPorts: [], limits })

interface Seen { requests: number; bodies: Map<string, number> }

async function upstreamCounting(seen: Seen): Promise<Upstream> {
  const upstream = await startUpstream((req, res) => {
    seen.requests++
    let size = 0
    req.on('data', (d: Buffer) => (size += d.length))
    req.on('end', () => {
      seen.bodies.set(req.url ?? '', size)
      res.end(`got ${size}`)
    })
  })
  const wss = new WebSocketServer({ noServer: true })
  upstream.server.on('upgrade', (req, socket, head) => {
    seen.requests++
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(m)))
  })
  return upstream
}

/** A raw request on its own connection; resolves with everything the relay sent until it closed. */
function raw(relay: Relay, text: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect(Number(new URL(relay.httpUrl!).port), '127.0.0.1', () => socket.write(text))
    let out = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (out += d))
    socket.on('error', () => {})
    socket.on('close', () => resolve(out))
    setTimeout(() => socket.destroy(), 10_000)
  })
}

function openWs(relay: Relay, host: string): Promise<{ ws?: WebSocket; status?: number; code?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${relay.httpUrl!.replace('http', 'ws')}/chat`, { headers: { host } })
    ws.once('open', () => resolve({ ws }))
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode, code: res.headers['gw-error-code'] as string | undefined })
      res.resume()
    })
    ws.once('error', () => {})
  })
}

describe('per-token header and body limits, and upgrades under the token limits', () => {
  it('validates header_size and body_size in the config file', () => {
    const dir = tempDir()
    try {
      const path = join(dir, 'relay.yml')
      const refuse = (yaml: string, expected: RegExp): void => {
        writeFileSync(path, yaml)
        assert.throws(() => loadRelayConfig(path, {}), (err: CodedError) => err.code === 'GW_ERR_RELAY_CONFIG' && expected.test(err.message))
      }
      refuse('domain: a.test\nlimits: { header_size: lots }\n', /limits\.header_size: "lots" is not a size; give bytes, e\.g\. 8192 or 16KiB/)
      refuse('domain: a.test\nlimits: { body_size: 1MiB/s }\n', /limits\.body_size: "1MiB\/s" is not a size/)
      refuse(`domain: a.test\ntokens:\n  - { sha256: ${sha('a')}, limits: { body_size: -5 } }\n`, /tokens\[0\]\.limits\.body_size: -5 is not a size/)
      writeFileSync(path, `domain: a.test\nlimits: { header_size: 16KiB, body_size: 10MB }\ntokens:\n  - { sha256: ${sha('a')}, limits: { body_size: 512 } }\n`)
      const config = loadRelayConfig(path, {})
      assert.deepEqual(config.limits, { headerSize: 16 * 1024, bodySize: 10_000_000 })
      assert.deepEqual(config.tokens[0]!.limits, { bodySize: 512 })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses heads and bodies past the token limits, before or while they flow, and forwards nothing refused', { timeout: 90_000 }, async (t) => {
    const dir = tempDir()
    const seen: Seen = { requests: 0, bodies: new Map() }
    const upstream = await upstreamCounting(seen)
    const relay = await startRelay({
      host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: dir,
      tokens: [entry('small', { headerSize: 2048, bodySize: 64 * 1024 }), entry('free', {})],
    })
    const agents: Agent[] = []
    const pool = new Pool(relay.httpUrl!, { connections: 4 })
    t.after(async () => {
      await pool.close()
      await Promise.all(agents.map((a) => a.close()))
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    const host = async (token: string): Promise<string> => {
      const agent = await startAgent({ relay: relay.httpUrl!, authtoken: token, endpoints: [{ upstream: upstream.url }] })
      agents.push(agent)
      return `${agent.tunnels[0]!.publicName}.localhost`
    }
    const small = await host('small')
    const free = await host('free')
    const send = async (h: string, path: string, headers: Record<string, string> = {}, body?: Buffer | Readable) => {
      const res = await pool.request({ path, method: body ? 'POST' : 'GET', headers: { host: h, ...headers }, body })
      return { status: res.statusCode, code: res.headers['gw-error-code'], text: await res.body.text() }
    }

    // header_size: 2 KiB of request line and headers.
    assert.equal((await send(small, '/h-ok', { cookie: 'a'.repeat(1500) })).status, 200)
    const before = seen.requests
    const big = await send(small, '/h-big', { cookie: 'a'.repeat(3000) })
    assert.equal(big.status, 431)
    assert.equal(big.code, 'GW_ERR_HEADERS_TOO_LARGE')
    assert.equal(seen.requests, before, 'the upstream never saw the refused head')
    assert.equal((await send(free, '/h-free', { cookie: 'a'.repeat(3000) })).status, 200, 'another token has no such limit')

    // body_size: 64 KiB. At the limit passes whole; one byte over with a Content-Length is refused up front.
    const at = await send(small, '/b-at', { 'content-type': 'application/octet-stream' }, Buffer.alloc(64 * 1024, 1))
    assert.equal(at.status, 200)
    assert.equal(seen.bodies.get('/b-at'), 64 * 1024)
    const n = seen.requests
    const over = await send(small, '/b-over', {}, Buffer.alloc(64 * 1024 + 1, 1))
    assert.equal(over.status, 413)
    assert.equal(over.code, 'GW_ERR_BODY_TOO_LARGE')
    assert.equal(seen.requests, n, 'a body refused by its Content-Length never reached the upstream')

    // A chunked body is counted as it flows and cut when it passes the limit.
    const chunks = (total: number): Readable => Readable.from((function* () {
      for (let sent = 0; sent < total; sent += 16 * 1024) yield Buffer.alloc(16 * 1024, 2)
    })())
    const under = await send(small, '/c-under', {}, chunks(48 * 1024))
    assert.equal(under.status, 200)
    assert.equal(seen.bodies.get('/c-under'), 48 * 1024)
    const cut = await raw(relay, `POST /c-over HTTP/1.1\r\nHost: ${small}\r\nTransfer-Encoding: chunked\r\n\r\n` + `4000\r\n${'x'.repeat(0x4000)}\r\n`.repeat(8) + '0\r\n\r\n')
    assert.match(cut, /^HTTP\/1\.1 413 /)
    assert.match(cut, /gw-error-code: GW_ERR_BODY_TOO_LARGE/i)
    assert.ok((seen.bodies.get('/c-over') ?? 0) <= 64 * 1024, `the upstream got at most the limit (${seen.bodies.get('/c-over')})`)
    assert.equal((await send(free, '/c-free', {}, chunks(200 * 1024))).status, 200, 'another token has no body limit')
    await waitFor(() => relay.openStreams() === 0, 10_000, 'the relay to hold no stream')
  })

  it('counts an upgraded connection against the token streams limit for as long as it is open', { timeout: 60_000 }, async (t) => {
    const dir = tempDir()
    const seen: Seen = { requests: 0, bodies: new Map() }
    const upstream = await upstreamCounting(seen)
    const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: dir, tokens: [entry('one', { streams: 1, headerSize: 1024 })] })
    const agent = await startAgent({ relay: relay.httpUrl!, authtoken: 'one', endpoints: [{ upstream: upstream.url }] })
    t.after(async () => {
      await agent.close()
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    const host = `${agent.tunnels[0]!.publicName}.localhost`
    const first = await openWs(relay, host)
    assert.ok(first.ws, 'the first WebSocket opens')
    const second = await openWs(relay, host)
    assert.equal(second.status, 503, 'a second WebSocket is refused')
    assert.equal(second.code, 'GW_ERR_STREAM_LIMIT')
    const plain = await request(`${relay.httpUrl}/`, { headers: { host } })
    await plain.body.dump()
    assert.equal(plain.statusCode, 503, 'an open WebSocket holds the only slot')
    assert.equal(plain.headers['gw-error-code'], 'GW_ERR_STREAM_LIMIT')
    first.ws!.close()
    await waitFor(async () => (await openWs(relay, host).then((r) => (r.ws?.close(), r.ws !== undefined))), 10_000, 'the slot to free after the close')
    await waitFor(() => relay.openStreams() === 0, 10_000, 'every upgraded stream to close')
    // The head limit holds for upgrades too.
    const tooBig = await raw(relay, `GET /chat HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: ${'c'.repeat(2000)}\r\n\r\n`)
    assert.match(tooBig, /^HTTP\/1\.1 431 /)
    assert.match(tooBig, /gw-error-code: GW_ERR_HEADERS_TOO_LARGE/i)
  })

  it('refuses an upgrade request that carries a body, so nothing in it reaches the upstream as a second request', { timeout: 60_000 }, async (t) => {
    const dir = tempDir()
    const seen: Seen = { requests: 0, bodies: new Map() }
    const upstream = await upstreamCounting(seen)
    const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: dir })
    const agent = await startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, policy: compilePolicy({ on_http_request: [{ expressions: ["req.url.path.startsWith('/admin')"], actions: [{ type: 'deny' }] }] }) }] })
    t.after(async () => {
      await agent.close()
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    const host = `${agent.tunnels[0]!.publicName}.localhost`
    const smuggled = `GET /admin HTTP/1.1\r\nHost: ${host}\r\n\r\n`
    for (const framing of [`Content-Length: ${smuggled.length}\r\n`, 'Transfer-Encoding: chunked\r\n']) {
      const body = framing.startsWith('Content') ? smuggled : `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`
      const out = await raw(relay, `GET /chat HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${framing}\r\n${body}`)
      assert.match(out, /^HTTP\/1\.1 400 /, framing)
      assert.match(out, /gw-error-code: GW_ERR_BAD_REQUEST/i)
    }
    assert.equal(seen.requests, 0, 'the upstream saw neither the upgrade nor the smuggled request')
    const ws = await openWs(relay, host)
    assert.ok(ws.ws, 'a bodiless handshake still opens')
    ws.ws!.close()
  })
})
