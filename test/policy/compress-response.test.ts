import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { brotliDecompressSync, gunzipSync, inflateSync, gzipSync } from 'node:zlib'
import { request } from 'undici'
import { compilePolicy } from '@gw/cli/policy/index'
import { negotiateEncoding } from '@gw/cli/policy/actions/compress-response'
import { startPolicyGateway, type PolicyGateway } from './tunnel-stack.js'

const text = 'the quick brown fox jumps over the lazy dog. '.repeat(200)
let upstream: Server
let gateway: PolicyGateway

before(async () => {
  upstream = createServer((req, res) => {
    if (req.url === '/already') {
      res.setHeader('content-type', 'text/plain')
      res.setHeader('content-encoding', 'gzip')
      res.end(gzipSync(text))
      return
    }
    if (req.url === '/tiny') {
      res.setHeader('content-type', 'text/plain')
      res.end('tiny')
      return
    }
    if (req.url === '/png') {
      res.setHeader('content-type', 'image/png')
      res.end(Buffer.alloc(4096))
      return
    }
    if (req.url === '/stream') {
      // Chunked, written in pieces: compression must stream, not wait for the end.
      res.setHeader('content-type', 'text/plain')
      res.setHeader('etag', '"v1"')
      let i = 0
      const timer = setInterval(() => {
        res.write(text.slice(0, 500))
        if (++i === 5) {
          clearInterval(timer)
          res.end()
        }
      }, 5)
      return
    }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ text }))
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  gateway = await startPolicyGateway(compilePolicy({ on_http_response: [{ actions: [{ type: 'compress-response' }] }] }),
    `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`)
})
after(async () => {
  await gateway.close()
  upstream.closeAllConnections()
  await new Promise<void>((r) => upstream.close(() => r()))
})

async function get(path: string, acceptEncoding?: string, method = 'GET') {
  const res = await request(`${gateway.url}${path}`, { method: method as 'GET', headers: acceptEncoding ? { 'accept-encoding': acceptEncoding } : {} })
  return { res, body: Buffer.from(await res.body.arrayBuffer()) }
}

test('gzip, br and deflate, negotiated from Accept-Encoding', async () => {
  const cases: Array<[string, string, (b: Buffer) => Buffer]> = [
    ['gzip', 'gzip', gunzipSync],
    ['br', 'br', brotliDecompressSync],
    ['deflate', 'deflate', inflateSync],
    ['gzip;q=0.5, br;q=0.9', 'br', brotliDecompressSync],
    ['br;q=0, gzip', 'gzip', gunzipSync],
    ['*', 'gzip', gunzipSync],
  ]
  for (const [accept, expected, decode] of cases) {
    const { res, body } = await get('/json', accept)
    assert.equal(res.headers['content-encoding'], expected, accept)
    assert.equal(res.headers['content-length'], undefined)
    assert.match(String(res.headers['vary']), /Accept-Encoding/)
    assert.deepEqual(JSON.parse(decode(body).toString()), { text }, accept)
    assert.ok(body.length < text.length / 5, 'actually compressed')
  }
})

test('streamed bodies are compressed as a stream; a strong ETag becomes weak', async () => {
  const { res, body } = await get('/stream', 'gzip')
  assert.equal(res.headers['content-encoding'], 'gzip')
  assert.equal(res.headers['etag'], 'W/"v1"')
  assert.equal(gunzipSync(body).toString(), text.slice(0, 500).repeat(5))
})

test('skipped: no Accept-Encoding, identity only, already encoded, tiny, images, HEAD', async () => {
  for (const [path, accept] of [['/json', undefined], ['/json', 'identity'], ['/tiny', 'gzip'], ['/png', 'gzip']] as const) {
    const { res } = await get(path, accept)
    assert.equal(res.headers['content-encoding'], undefined, `${path} ${accept}`)
  }
  const already = await get('/already', 'br, gzip')
  assert.equal(already.res.headers['content-encoding'], 'gzip')
  assert.equal(gunzipSync(already.body).toString(), text, 'not compressed twice')
  const head = await get('/json', 'gzip', 'HEAD')
  assert.equal(head.res.headers['content-encoding'], undefined)
})

test('negotiateEncoding', () => {
  assert.equal(negotiateEncoding(undefined, ['gzip']), undefined)
  assert.equal(negotiateEncoding('GZIP', ['br', 'gzip']), 'gzip')
  assert.equal(negotiateEncoding('br;q=0.1, deflate;q=0.2', ['br', 'gzip', 'deflate']), 'deflate')
  assert.equal(negotiateEncoding('*;q=0', ['gzip']), undefined)
})
