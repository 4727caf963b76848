/**
 * HTTP/2 at the relay's edge: the TLS port negotiates h2 by ALPN and serves HTTP/1.1 on
 * the same port. Real clients (curl --http2, node:http2, undici with allowH2) through a
 * real relay, agent and upstream; the relay's TLS is its own per-run CA.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { constants as h2constants, type ClientHttp2Session } from 'node:http2'
import { Client } from 'undici'
import { AgentEvents, type Exchange } from '@gw/cli/agent/events'
import { startAgent } from '@gw/cli/agent/agent'
import { startStack, tempDir, waitFor, type Stack } from '../helpers/stack.js'
import { curl, h2Connect, h2Request, HAVE_CURL } from '../helpers/h2.js'

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

/** Deterministic bytes, so the client can check what it got without holding a copy. */
function pattern(size: number): Buffer {
  const out = Buffer.alloc(size)
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >> 11)) & 0xff
  return out
}

describe('HTTP/2 at the relay edge', () => {
  let stack: Stack
  let dir: string
  let session: ClientHttp2Session
  const events = new AgentEvents()
  const exchanges: Exchange[] = []
  const sseGate: Array<() => void> = []
  let endlessAborted = 0
  const download = pattern(8 * 1024 * 1024 + 123)

  before(async () => {
    dir = tempDir('gw-h2-')
    events.on('exchange:end', (ex) => exchanges.push(ex))
    stack = await startStack((req, res) => {
      const url = new URL(req.url!, 'http://x')
      if (url.pathname === '/echo') {
        const chunks: Buffer[] = []
        req.on('data', (d: Buffer) => chunks.push(d))
        req.on('end', () => {
          const body = Buffer.concat(chunks)
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(JSON.stringify({
            method: req.method, url: req.url, host: req.headers.host, cookie: req.headers.cookie,
            proto: req.headers['x-forwarded-proto'], forwardedHost: req.headers['x-forwarded-host'],
            te: req.headers['transfer-encoding'], length: body.length, sha: sha256(body),
            pseudo: req.rawHeaders.filter((h) => h.startsWith(':')),
          }))
        })
        return
      }
      if (url.pathname === '/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
        res.write('part one\n')
        res.write('part two\n')
        res.addTrailers({ 'x-checksum': sha256('part one\npart two\n') })
        return void res.end()
      }
      if (url.pathname === '/download') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': download.length })
        return void res.end(download)
      }
      if (url.pathname === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        let n = 0
        const next = (): void => {
          n++
          res.write(`id: ${n}\ndata: event ${n}\n\n`)
          if (n === 3) return void res.end()
          sseGate.push(next)
        }
        return next()
      }
      if (url.pathname === '/endless') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const chunk = Buffer.alloc(16 * 1024, 7)
        const timer = setInterval(() => res.write(chunk), 10)
        res.write(chunk)
        res.on('close', () => {
          clearInterval(timer)
          if (!res.writableFinished) endlessAborted++
        })
        return
      }
      if (url.pathname === '/die') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        res.write(Buffer.alloc(1000, 1))
        setTimeout(() => res.socket?.destroy(), 50)
        return
      }
      if (url.pathname === '/no-body') {
        // A gRPC-style "trailers-only" answer: a status in the headers, no body.
        res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '5', 'content-length': '0' })
        return void res.end()
      }
      if (url.pathname === '/two-content-types') {
        res.setHeader('content-type', ['text/plain', 'text/html'])
        return void res.end('which?')
      }
      if (url.pathname === '/connection-headers') {
        // Fields HTTP/2 forbids in a response (RFC 9113 §8.2.2): the relay must strip them.
        res.setHeader('keep-alive', 'timeout=5')
        res.setHeader('proxy-connection', 'keep-alive')
        res.setHeader('http2-settings', 'AAMAAABkAAQAoAAAAAIAAAAA')
        res.setHeader('connection', 'x-hop')
        res.setHeader('x-hop', 'gone')
        res.setHeader('x-kept', 'yes')
        return void res.end('stripped')
      }
      res.end('ok')
    }, { agent: { events, record: true } })
    session = await h2Connect(stack.httpsOrigin, stack.relay.caCertPem!, stack.host)
  })

  after(async () => {
    session?.close()
    await stack.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const authority = (): string => `${stack.host}:${stack.relay.httpsPort}`
  const curlArgs = (): string[] => ['--resolve', `${stack.host}:${stack.relay.httpsPort}:127.0.0.1`]
  const url = (path: string): string => `https://${authority()}${path}`

  it('curl --http2 gets HTTP/2, with :authority as the upstream\'s Host and no pseudo-header forwarded', { skip: HAVE_CURL ? false : 'curl is not installed' }, async () => {
    const res = await curl(dir, stack.relay.caCertPem!, [...curlArgs(), '--http2', '-w', '\n%{http_version}', url('/echo?x=1')])
    assert.equal(res.code, 0, res.stderr)
    const [json, version] = res.stdout.split('\n')
    assert.equal(version, '2')
    const seen = JSON.parse(json!)
    assert.equal(seen.host, authority())
    assert.equal(seen.forwardedHost, authority())
    assert.equal(seen.proto, 'https')
    assert.equal(seen.url, '/echo?x=1')
    assert.deepEqual(seen.pseudo, [])
  })

  it('still serves HTTP/1.1 on the same port (curl --http1.1)', { skip: HAVE_CURL ? false : 'curl is not installed' }, async () => {
    const res = await curl(dir, stack.relay.caCertPem!, [...curlArgs(), '--http1.1', '-w', '\n%{http_version}', url('/echo')])
    assert.equal(res.code, 0, res.stderr)
    const [json, version] = res.stdout.split('\n')
    assert.equal(version, '1.1')
    assert.equal(JSON.parse(json!).host, authority())
  })

  it('curl --http2 uploads 3 MiB and downloads 8 MiB intact', { skip: HAVE_CURL ? false : 'curl is not installed' }, async () => {
    const upload = pattern(3 * 1024 * 1024)
    writeFileSync(join(dir, 'upload.bin'), upload)
    const up = await curl(dir, stack.relay.caCertPem!, [...curlArgs(), '--http2', '--data-binary', `@${join(dir, 'upload.bin')}`, url('/echo')])
    assert.equal(up.code, 0, up.stderr)
    assert.deepEqual([JSON.parse(up.stdout).length, JSON.parse(up.stdout).sha], [upload.length, sha256(upload)])

    const down = await curl(dir, stack.relay.caCertPem!, [...curlArgs(), '--http2', '-o', join(dir, 'download.bin'), '-w', '%{http_version} %{size_download}', url('/download')])
    assert.equal(down.code, 0, down.stderr)
    assert.equal(down.stdout, `2 ${download.length}`)
    assert.equal(sha256(readFileSync(join(dir, 'download.bin'))), sha256(download))
  })

  it('curl --http2 receives the upstream\'s trailers', { skip: HAVE_CURL ? false : 'curl is not installed' }, async () => {
    const res = await curl(dir, stack.relay.caCertPem!, [...curlArgs(), '--http2', '-i', url('/trailers')])
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^HTTP\/2 200/)
    assert.match(res.stdout, /part one\npart two\n/)
    assert.match(res.stdout, new RegExp(`x-checksum: ${sha256('part one\npart two\n')}`))
  })

  it('curl --http2 to an unknown name gets 404 with gw-error-code', { skip: HAVE_CURL ? false : 'curl is not installed' }, async () => {
    const host = `nobody.localhost:${stack.relay.httpsPort}`
    const res = await curl(dir, stack.relay.caCertPem!, ['--resolve', `nobody.localhost:${stack.relay.httpsPort}:127.0.0.1`, '--http2', '-i', `https://${host}/`])
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^HTTP\/2 404/)
    assert.match(res.stdout, /gw-error-code: GW_ERR_TUNNEL_NOT_FOUND/)
  })

  it('serves 50 concurrent streams on one connection, each its own request', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      h2Request(session, { ':method': 'POST', ':path': `/echo?i=${i}`, ':authority': authority(), 'content-type': 'text/plain' }, `body ${i}`)))
    results.forEach((res, i) => {
      assert.equal(res.status, 200)
      const seen = JSON.parse(res.body.toString())
      assert.equal(seen.url, `/echo?i=${i}`)
      assert.equal(seen.sha, sha256(`body ${i}`))
    })
  })

  it('joins cookies split over several fields, and streams a body sent without Content-Length', async () => {
    const cookies = await h2Request(session, { ':path': '/echo', ':authority': authority(), cookie: ['a=1', 'b=2', 'c=3'] })
    assert.equal(JSON.parse(cookies.body.toString()).cookie, 'a=1; b=2; c=3')

    const body = pattern(1024 * 1024 + 7)
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/echo', ':authority': authority() })
      let status = 0
      let text = ''
      stream.on('response', (h) => (status = Number(h[':status'])))
      stream.setEncoding('utf8')
      stream.on('data', (d: string) => (text += d))
      stream.on('end', () => resolve({ status, body: text }))
      stream.on('error', reject)
      // Pieces, no Content-Length: only the END_STREAM flag says where the body ends.
      for (let i = 0; i < body.length; i += 100_000) stream.write(body.subarray(i, i + 100_000))
      stream.end()
    })
    assert.equal(res.status, 200)
    const seen = JSON.parse(res.body)
    assert.deepEqual([seen.length, seen.sha], [body.length, sha256(body)])
  })

  it('refuses a Host that differs from :authority, and CONNECT, with 400 GW_ERR_BAD_REQUEST', async () => {
    const mismatch = await h2Request(session, { ':path': '/echo', ':authority': authority(), host: 'other.localhost' })
    assert.equal(mismatch.status, 400)
    assert.equal(mismatch.headers['gw-error-code'], 'GW_ERR_BAD_REQUEST')

    const connect = await h2Request(session, { ':method': 'CONNECT', ':authority': 'example.com:443' })
    assert.equal(connect.status, 400)
    assert.equal(connect.headers['gw-error-code'], 'GW_ERR_BAD_REQUEST')
  })

  it('strips connection-specific response fields an upstream sends', async () => {
    const res = await h2Request(session, { ':path': '/connection-headers', ':authority': authority() })
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), 'stripped')
    assert.equal(res.headers['x-kept'], 'yes')
    for (const name of ['keep-alive', 'proxy-connection', 'http2-settings', 'connection', 'x-hop']) assert.equal(res.headers[name], undefined, name)
  })

  it('a response with no body and no trailers is one HEADERS frame that ends the stream (gRPC trailers-only)', async () => {
    const stream = session.request({ ':path': '/no-body', ':authority': authority() })
    const [headers, flags] = await new Promise<[Record<string, unknown>, number]>((resolve, reject) => {
      stream.once('response', (h, f) => resolve([h, f]))
      stream.once('error', reject)
    })
    stream.resume()
    assert.equal(headers['grpc-status'], '5')
    assert.equal(flags & h2constants.NGHTTP2_FLAG_END_STREAM, h2constants.NGHTTP2_FLAG_END_STREAM)
  })

  it('a head HTTP/2 cannot carry (two Content-Types) is 502 GW_ERR_UPSTREAM_BAD_RESPONSE, and the connection goes on', async () => {
    const res = await h2Request(session, { ':path': '/two-content-types', ':authority': authority() })
    assert.equal(res.status, 502)
    assert.equal(res.headers['gw-error-code'], 'GW_ERR_UPSTREAM_BAD_RESPONSE')
    assert.equal((await h2Request(session, { ':path': '/', ':authority': authority() })).status, 200)
  })

  it('carries trailers and a large download to a node:http2 client', async () => {
    const trailers = await h2Request(session, { ':path': '/trailers', ':authority': authority() })
    assert.equal(trailers.body.toString(), 'part one\npart two\n')
    assert.equal(trailers.trailers?.['x-checksum'], sha256('part one\npart two\n'))

    const big = await h2Request(session, { ':path': '/download', ':authority': authority() })
    assert.equal(big.headers['content-length'], String(download.length))
    assert.equal(sha256(big.body), sha256(download))
  })

  it('streams server-sent events: each event arrives before the upstream sends the next', async () => {
    const stream = session.request({ ':path': '/events', ':authority': authority(), accept: 'text/event-stream' })
    stream.setEncoding('utf8')
    let text = ''
    let ended = false
    stream.on('data', (d: string) => (text += d))
    stream.on('end', () => (ended = true))
    for (let n = 1; n <= 3; n++) {
      await waitFor(() => text.includes(`data: event ${n}\n\n`), 10_000, `event ${n}`)
      assert.equal(text.includes(`event ${n + 1}`), false)
      if (n < 3) {
        await waitFor(() => sseGate.length > 0, 10_000, 'the upstream waiting')
        sseGate.shift()!()
      }
    }
    await waitFor(() => ended, 10_000, 'the end of the event stream')
  })

  it('an upstream that dies mid-body resets that stream only; the connection serves the next request', async () => {
    await assert.rejects(h2Request(session, { ':path': '/die', ':authority': authority() }), /stream closed with code|NGHTTP2_INTERNAL_ERROR/)
    const next = await h2Request(session, { ':path': '/', ':authority': authority() })
    assert.equal(next.body.toString(), 'ok')
    await waitFor(() => stack.relay.openStreams() === 0, 10_000, 'streams back to 0')
  })

  it('a client that cancels a stream stops the upstream, and the relay frees the tunnel stream', async () => {
    const stream = session.request({ ':path': '/endless', ':authority': authority() })
    let received = 0
    stream.on('data', (d: Buffer) => (received += d.length))
    stream.on('error', () => {})
    await waitFor(() => received > 64 * 1024, 10_000, 'some of the endless body')
    stream.close(h2constants.NGHTTP2_CANCEL)
    await waitFor(() => endlessAborted === 1, 10_000, 'the upstream to see the abort')
    await waitFor(() => stack.relay.openStreams() === 0, 10_000, 'streams back to 0')
    const next = await h2Request(session, { ':path': '/', ':authority': authority() })
    assert.equal(next.status, 200)
  })

  it('undici with allowH2 speaks HTTP/2, and the agent records the request as HTTP/2.0', async () => {
    const client = new Client(stack.httpsOrigin, { allowH2: true, connect: { ca: stack.relay.caCertPem!, servername: stack.host } })
    try {
      const before = exchanges.length
      const res = await client.request({ path: '/echo?via=undici', method: 'GET', headers: { host: authority() } })
      assert.equal(res.statusCode, 200)
      assert.equal(JSON.parse(await res.body.text()).host, authority())
      await waitFor(() => exchanges.slice(before).some((e) => e.request.target === '/echo?via=undici'), 10_000, 'the exchange')
      const ex = exchanges.slice(before).find((e) => e.request.target === '/echo?via=undici')!
      assert.equal(ex.request.httpVersion, '2.0')
    } finally {
      await client.close()
    }
  })
})

describe('HTTP/2 errors at the relay edge', () => {
  it('431, 502 for a refused upstream and for an offline agent, each with gw-error-code', async () => {
    const stack = await startStack((_req, res) => res.end('ok'), { relay: { maxHeaderSize: 4096 } })
    const session = await h2Connect(stack.httpsOrigin, stack.relay.caCertPem!, stack.host)
    const authority = `${stack.host}:${stack.relay.httpsPort}`
    try {
      const big = await h2Request(session, { ':path': '/', ':authority': authority, 'x-big': 'a'.repeat(5000) })
      assert.equal(big.status, 431)
      assert.equal(big.headers['gw-error-code'], 'GW_ERR_HEADERS_TOO_LARGE')

      await stack.upstream.close()
      const refused = await h2Request(session, { ':path': '/', ':authority': authority, accept: 'application/json' })
      assert.equal(refused.status, 502)
      assert.equal(refused.headers['gw-error-code'], 'GW_ERR_UPSTREAM_REFUSED')
      assert.equal(JSON.parse(refused.body.toString()).error.code, 'GW_ERR_UPSTREAM_REFUSED')

      await stack.agent.close()
      await waitFor(() => stack.relay.agentCount === 0, 10_000, 'the agent to leave')
      const offline = await h2Request(session, { ':path': '/', ':authority': authority })
      assert.equal(offline.status, 502)
      assert.equal(offline.headers['gw-error-code'], 'GW_ERR_AGENT_OFFLINE')
    } finally {
      session.close()
      await stack.relay.close()
    }
  })

  it('a drain lets an HTTP/2 request in flight finish, then the relay closes its session', async () => {
    let release: (() => void) | undefined
    const stack = await startStack((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first ')
      release = () => res.end('last')
    })
    const session = await h2Connect(stack.httpsOrigin, stack.relay.caCertPem!, stack.host)
    let goaway = false
    session.on('goaway', () => (goaway = true))
    try {
      const pending = h2Request(session, { ':path': '/slow', ':authority': `${stack.host}:${stack.relay.httpsPort}` })
      await waitFor(() => release !== undefined, 10_000, 'the request at the upstream')
      const drained = stack.relay.drain(10_000)
      await waitFor(() => goaway, 10_000, 'GOAWAY on the client session')
      release!()
      const res = await pending
      assert.equal(res.body.toString(), 'first last')
      assert.equal(await drained, true)
    } finally {
      session.destroy()
      await stack.agent.close()
      await stack.upstream.close()
    }
  })

  it('an agent still connects over the HTTPS port, whose ALPN now offers h2', async () => {
    const stack = await startStack((_req, res) => res.end('ok'))
    const events = new AgentEvents()
    const agent = await startAgent({ relay: `https://localhost:${stack.relay.httpsPort}`, relayCa: stack.relay.caCertPem!, endpoints: [{ upstream: stack.upstream.url }], events })
    try {
      const name = agent.tunnels[0]!.publicName
      const session = await h2Connect(stack.httpsOrigin, stack.relay.caCertPem!, `${name}.localhost`)
      const res = await h2Request(session, { ':path': '/', ':authority': `${name}.localhost:${stack.relay.httpsPort}` })
      session.close()
      assert.equal(res.body.toString(), 'ok')
    } finally {
      await agent.close()
      await stack.close()
    }
  })
})
