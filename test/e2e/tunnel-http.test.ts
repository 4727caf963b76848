import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Agent as UndiciAgent, Pool, request } from 'undici'
import { startStack, waitFor, type Stack } from '../helpers/stack.js'

const BLOCK = randomBytes(64 * 1024)

/** `size` bytes of BLOCK repeated, as a stream, without holding them all. */
function pattern(size: number): Readable {
  let left = size
  return new Readable({
    read() {
      if (left === 0) return void this.push(null)
      const n = Math.min(left, BLOCK.length)
      left -= n
      this.push(BLOCK.subarray(0, n))
    },
  })
}

/** Answers with the length and SHA-256 of the request body it received. */
function hashBody(req: IncomingMessage, res: ServerResponse): void {
  const hash = createHash('sha256')
  let length = 0
  req.on('data', (c: Buffer) => {
    hash.update(c)
    length += c.length
  })
  req.on('end', () => res.end(JSON.stringify({ length, hash: hash.digest('hex') })))
}

function patternHash(size: number): string {
  const hash = createHash('sha256')
  for (let left = size; left > 0; left -= BLOCK.length) hash.update(BLOCK.subarray(0, Math.min(left, BLOCK.length)))
  return hash.digest('hex')
}

describe('HTTP through the tunnel', () => {
  let stack: Stack
  let pool: Pool
  let upstreamSockets = 0

  before(async () => {
    stack = await startStack((req, res) => {
      const url = new URL(req.url!, 'http://x')
      switch (url.pathname) {
        case '/download': {
          const size = Number(url.searchParams.get('size'))
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
          pattern(size).pipe(res)
          return
        }
        case '/upload':
          return hashBody(req, res)
        case '/headers':
          res.setHeader('content-type', 'application/json')
          res.end(JSON.stringify({ rawHeaders: req.rawHeaders, url: req.url, method: req.method }))
          return
        case '/many-headers': {
          const raw: string[] = []
          for (let i = 0; i < 100; i++) raw.push(`X-Big-${i}`, 'v'.repeat(300))
          raw.push('Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'content-length', '2')
          res.writeHead(200, raw)
          res.end('ok')
          return
        }
        case '/status':
          res.statusCode = Number(url.searchParams.get('code'))
          res.end()
          return
        case '/trailers':
          res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
          res.write('part one,')
          res.write('part two')
          res.addTrailers({ 'x-checksum': 'abc123' })
          res.end()
          return
        case '/spoof':
          res.writeHead(200, { 'gw-error-code': 'GW_ERR_FAKE', 'x-kept': 'yes' })
          res.end('spoofed')
          return
        case '/slow':
          setTimeout(() => res.end('late'), Number(url.searchParams.get('ms')))
          return
        default:
          res.end('hello')
      }
    })
    stack.upstream.server.on('connection', () => upstreamSockets++)
    pool = new Pool(stack.httpOrigin, { connections: 64, maxHeaderSize: 1024 * 1024 })
  })

  after(async () => {
    await pool.close()
    await stack.close()
  })

  const get = (path: string, headers: Record<string, string> = {}) =>
    pool.request({ path, method: 'GET', headers: { host: stack.host, ...headers } })

  for (const size of [0, 1, 64 * 1024, 10 * 1024 * 1024, 100 * 1024 * 1024]) {
    it(`downloads ${size} bytes intact`, async () => {
      const res = await get(`/download?size=${size}`)
      assert.equal(res.statusCode, 200)
      const hash = createHash('sha256')
      let length = 0
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer)
        length += (chunk as Buffer).length
      }
      assert.equal(length, size)
      assert.equal(hash.digest('hex'), patternHash(size))
    })

    it(`uploads ${size} bytes intact`, async () => {
      const res = await pool.request({
        path: '/upload',
        method: 'POST',
        headers: { host: stack.host, 'content-type': 'application/octet-stream' },
        body: pattern(size),
      })
      assert.equal(res.statusCode, 200)
      assert.deepEqual(await res.body.json(), { length: size, hash: patternHash(size) })
    })
  }

  it('serves 1,000 concurrent requests', async () => {
    const agent = new UndiciAgent({ connections: 1000 })
    try {
      const results = await Promise.all(
        Array.from({ length: 1000 }, async (_, i) => {
          const res = await request(`${stack.httpOrigin}/headers?i=${i}`, { dispatcher: agent, headers: { host: stack.host } })
          const body = (await res.body.json()) as { url: string }
          return res.statusCode === 200 && body.url === `/headers?i=${i}`
        }),
      )
      assert.equal(results.filter(Boolean).length, 1000)
    } finally {
      await agent.close()
    }
  })

  it('reuses kept-alive connections on both sides', async () => {
    const single = new Pool(stack.httpOrigin, { connections: 1 })
    const relaySockets = new Set<unknown>()
    let clientConnects = 0
    single.on('connect', () => clientConnects++)
    try {
      for (let i = 0; i < 20; i++) {
        const res = await single.request({ path: '/', method: 'GET', headers: { host: stack.host } })
        assert.equal(await res.body.text(), 'hello')
      }
      assert.equal(clientConnects, 1, 'the public client reused one connection')
      const before = upstreamSockets
      for (let i = 0; i < 20; i++) {
        const res = await single.request({ path: '/', method: 'GET', headers: { host: stack.host } })
        await res.body.text()
      }
      assert.ok(upstreamSockets - before <= 1, `the agent reused its upstream connection (opened ${upstreamSockets - before})`)
      void relaySockets
    } finally {
      await single.close()
    }
  })

  it('adds X-Forwarded-* and keeps the client Host, header order and duplicates', async () => {
    const res = await get('/headers', { 'x-forwarded-for': '203.0.113.7', 'x-dup': 'a' })
    const { rawHeaders } = (await res.body.json()) as { rawHeaders: string[] }
    const pairs = new Map<string, string[]>()
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const k = rawHeaders[i]!.toLowerCase()
      pairs.set(k, [...(pairs.get(k) ?? []), rawHeaders[i + 1]!])
    }
    assert.deepEqual(pairs.get('host'), [stack.host])
    assert.deepEqual(pairs.get('x-forwarded-for'), ['203.0.113.7, 127.0.0.1'])
    assert.deepEqual(pairs.get('x-forwarded-proto'), ['http'])
    assert.deepEqual(pairs.get('x-forwarded-host'), [stack.host])
  })

  it('passes many large headers and duplicate Set-Cookie both ways', async () => {
    const headers: Record<string, string> = {}
    for (let i = 0; i < 100; i++) headers[`x-req-${i}`] = 'r'.repeat(200)
    const res = await get('/many-headers', headers)
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2'])
    assert.equal(res.headers['x-big-99'], 'v'.repeat(300))
    assert.equal(await res.body.text(), 'ok')
  })

  it('answers HEAD, 204 and 304 without a body', async () => {
    const head = await pool.request({ path: '/download?size=1000', method: 'HEAD', headers: { host: stack.host } })
    assert.equal(head.statusCode, 200)
    assert.equal(head.headers['content-length'], '1000')
    assert.equal(await head.body.text(), '')
    for (const code of [204, 304]) {
      const res = await get(`/status?code=${code}`)
      assert.equal(res.statusCode, code)
      assert.equal(await res.body.text(), '')
    }
  })

  it('passes chunked bodies with trailers', async () => {
    const res = await get('/trailers')
    assert.equal(await res.body.text(), 'part one,part two')
    assert.equal(res.trailers['x-checksum'], 'abc123')
  })

  it('strips a gw-error-code header an upstream tries to set', async () => {
    const res = await get('/spoof')
    assert.equal(res.headers['gw-error-code'], undefined)
    assert.equal(res.headers['x-kept'], 'yes')
    assert.equal(await res.body.text(), 'spoofed')
  })

  it('answers an unknown name with 404 and a JSON error for JSON clients', async () => {
    const res = await pool.request({ path: '/', method: 'GET', headers: { host: 'nobody-here.localhost', accept: 'application/json' } })
    assert.equal(res.statusCode, 404)
    assert.equal(res.headers['gw-error-code'], 'GW_ERR_TUNNEL_NOT_FOUND')
    const body = (await res.body.json()) as { error: { code: string } }
    assert.equal(body.error.code, 'GW_ERR_TUNNEL_NOT_FOUND')
  })

  it('serves HTTPS with a certificate the per-run CA signs', async () => {
    const tls = new UndiciAgent({ connect: { ca: stack.relay.caCertPem!, servername: stack.host } })
    try {
      const res = await request(`${stack.httpsOrigin}/headers`, { dispatcher: tls, headers: { host: stack.host } })
      const body = (await res.body.json()) as { rawHeaders: string[] }
      const proto = body.rawHeaders[body.rawHeaders.findIndex((h) => h.toLowerCase() === 'x-forwarded-proto') + 1]
      assert.equal(proto, 'https')
    } finally {
      await tls.close()
    }
  })
})

describe('HTTP through the tunnel with capture on', () => {
  it('delivers request and response bodies whole while the inspector records them', async () => {
    const { createCapture } = await import('@gw/cli/inspect/capture')
    const stack = await startStack(hashBody, { agent: { record: true } })
    const capture = createCapture(stack.agent.events, { bodyLimit: 1024, dbSize: 1024 * 1024 })
    const pool = new Pool(stack.httpOrigin)
    try {
      for (const size of [1, 64 * 1024, 10 * 1024 * 1024]) {
        const res = await pool.request({ path: '/upload', method: 'POST', headers: { host: stack.host }, body: pattern(size) })
        assert.deepEqual(await res.body.json(), { length: size, hash: patternHash(size) })
      }
      await waitFor(() => capture.size === 3, 5000, 'three captured requests')
    } finally {
      await pool.close()
      await stack.close()
    }
  })
})
