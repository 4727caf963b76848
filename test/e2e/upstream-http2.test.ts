/**
 * HTTP/2 from the agent to the upstream (`upstreamProtocol: 'http2'`, the code behind
 * `gw http --upstream-protocol http2`): a real node:http2 server on h2c, and one on TLS
 * (h2 by ALPN), behind a real relay and agent; clients over HTTP/1.1 and HTTP/2.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { createSecureServer, createServer, type Http2SecureServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { rmSync } from 'node:fs'
import { generate } from 'selfsigned'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { tempDir, waitFor } from '../helpers/stack.js'
import { h2Connect, h2Request } from '../helpers/h2.js'

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')
const BIG = Buffer.alloc(8 * 1024 * 1024 + 5, 0x5a)

/** The upstream's answers, by path. Each request's headers are kept for the test to read. */
function onStream(seen: IncomingHttpHeaders[], sessions: { count: number; live: Set<Http2Session> }) {
  return (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    seen.push(headers)
    const chunks: Buffer[] = []
    stream.on('data', (d: Buffer) => chunks.push(d))
    stream.on('error', () => {})
    stream.on('end', () => {
      const path = String(headers[':path'])
      if (path === '/hang') return
      if (path === '/reset') return stream.close(0x2)
      if (path === '/big') {
        stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' }, { waitForTrailers: true })
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sha': sha256(BIG) }))
        return void stream.end(BIG)
      }
      const body = Buffer.concat(chunks)
      stream.respond({ ':status': 201, 'content-type': 'application/json', 'x-multi': ['a', 'b'] }, { waitForTrailers: true })
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-length': String(body.length) }))
      stream.end(JSON.stringify({ sha: sha256(body), sessions: sessions.count }))
    })
  }
}

interface Fixture {
  relay: Relay
  agent: Agent
  host: string
  seen: IncomingHttpHeaders[]
  sessions: { count: number; live: Set<Http2Session> }
  server: Http2Server | Http2SecureServer
  close(): Promise<void>
}

async function start(tls: boolean, agentOptions: { responseTimeout?: number } = {}): Promise<Fixture> {
  const dir = tempDir('gw-up-h2-')
  const seen: IncomingHttpHeaders[] = []
  const sessions = { count: 0, live: new Set<Http2Session>() }
  let server: Http2Server | Http2SecureServer
  if (tls) {
    const made = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' })
    server = createSecureServer({ key: made.private, cert: made.cert })
  } else {
    server = createServer()
  }
  server.on('session', (session: Http2Session) => {
    sessions.count++
    sessions.live.add(session)
    session.once('close', () => sessions.live.delete(session))
  })
  server.on('stream', onStream(seen, sessions))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir: dir })
  const agent = await startAgent({
    relay: relay.httpUrl!,
    endpoints: [{ upstream: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, upstreamProtocol: 'http2' }],
    ...agentOptions,
  })
  return {
    relay, agent, seen, sessions, server,
    host: `${agent.tunnels[0]!.publicName}.localhost`,
    close: async () => {
      await agent.close()
      await relay.close()
      for (const s of sessions.live) s.destroy()
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** An HTTP/1.1 request through the relay's plain port. */
function h1(f: Fixture, path: string, body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string; trailers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: f.relay.httpPort, path, method: body === undefined ? 'GET' : 'POST', headers: { host: f.host } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text, trailers: res.trailers }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

describe('HTTP/2 to the upstream, h2c', () => {
  let f: Fixture
  before(async () => {
    f = await start(false, { responseTimeout: 1500 })
  })
  after(() => f.close())

  it('an HTTP/1.1 client\'s request reaches the upstream as HTTP/2, with :authority, te: trailers, and its body; trailers come back', async () => {
    const res = await h1(f, '/echo?q=1', 'hello h2c')
    assert.equal(res.status, 201)
    assert.equal(JSON.parse(res.body).sha, sha256('hello h2c'))
    assert.equal(res.trailers['x-length'], '9')
    const head = f.seen.at(-1)!
    assert.equal(head[':authority'], f.host)
    assert.equal(head[':path'], '/echo?q=1')
    assert.equal(head[':method'], 'POST')
    assert.equal(head.te, 'trailers')
    assert.equal(head['x-forwarded-proto'], 'http')
    assert.equal(res.headers['x-multi'], 'a, b')
  })

  it('calls share one HTTP/2 session to the upstream', async () => {
    const before = f.sessions.count
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => h1(f, `/echo?i=${i}`, `body ${i}`)))
    for (const [i, res] of all.entries()) assert.equal(JSON.parse(res.body).sha, sha256(`body ${i}`))
    assert.ok(f.sessions.count - before <= 1, `sessions opened: ${f.sessions.count - before}`)
  })

  it('8 MiB and its trailers reach a slow HTTP/2 client whole (the body buffered behind a pause is not dropped when the trailers arrive)', async () => {
    const session = await h2Connect(f.relay.httpsUrl!, f.relay.caCertPem!, f.host)
    try {
      const stream = session.request({ ':path': '/big', ':authority': `${f.host}:${f.relay.httpsPort}` })
      const hash = createHash('sha256')
      let length = 0
      let trailers: IncomingHttpHeaders | undefined
      stream.on('trailers', (t) => (trailers = t))
      // Read in bursts, so every window along the way fills and the upstream is paused.
      stream.on('data', (d: Buffer) => {
        hash.update(d)
        length += d.length
        stream.pause()
        setTimeout(() => stream.resume(), 2)
      })
      await new Promise<void>((resolve, reject) => {
        stream.on('end', resolve)
        stream.on('error', reject)
      })
      assert.equal(length, BIG.length)
      assert.equal(hash.digest('hex'), sha256(BIG))
      assert.equal(trailers?.['x-sha'], sha256(BIG))
    } finally {
      session.close()
    }
  })

  it('a stream the upstream resets is 502, one it never answers is 504, each with gw-error-code', async () => {
    const reset = await h1(f, '/reset')
    assert.equal(reset.status, 502)
    assert.match(String(reset.headers['gw-error-code']), /^GW_ERR_UPSTREAM_/)
    const hang = await h1(f, '/hang')
    assert.equal(hang.status, 504)
    assert.equal(hang.headers['gw-error-code'], 'GW_ERR_UPSTREAM_TIMEOUT')
    await waitFor(() => f.relay.openStreams() === 0, 10_000, 'streams back to 0')
  })

  it('an upstream that is down is 502 GW_ERR_UPSTREAM_REFUSED', async () => {
    const session = await h2Connect(f.relay.httpsUrl!, f.relay.caCertPem!, f.host)
    const closed = new Promise<void>((resolve) => f.server.close(() => resolve()))
    for (const s of f.sessions.live) s.destroy()
    await closed
    try {
      const res = await h2Request(session, { ':path': '/echo', ':authority': `${f.host}:${f.relay.httpsPort}` })
      assert.equal(res.status, 502)
      assert.equal(res.headers['gw-error-code'], 'GW_ERR_UPSTREAM_REFUSED')
    } finally {
      session.close()
    }
  })
})

describe('HTTP/2 to the upstream, h2 over TLS', () => {
  it('speaks h2 by ALPN to an https upstream (its certificate not verified by default, as for HTTP/1.1)', async () => {
    const f = await start(true)
    try {
      const res = await h1(f, '/echo', 'over tls')
      assert.equal(res.status, 201)
      assert.equal(JSON.parse(res.body).sha, sha256('over tls'))
      assert.equal(res.trailers['x-length'], '8')
      assert.equal(f.seen.at(-1)![':scheme'], 'https')
    } finally {
      await f.close()
    }
  })
})
