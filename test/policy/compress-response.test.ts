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

test('compress (LZW, ngrok\'s fourth algorithm) from ngrok\'s example, through the real tunnel: gzip -d, the reference decoder, reads it back', async () => {
  const { execFileSync } = await import('node:child_process')
  const { randomBytes } = await import('node:crypto')
  const { fixture } = await import('./ngrok-docs.js')
  const big = randomBytes(200_000).toString('base64') + text.repeat(50)
  const lzwUpstream = createServer((req, res) => {
    res.setHeader('content-type', 'text/plain')
    res.end(req.url === '/api/big' ? big : text)
  })
  await new Promise<void>((r) => lzwUpstream.listen(0, '127.0.0.1', r))
  const gw = await startPolicyGateway(compilePolicy(fixture('traffic-policy-actions-compress-response-8e5f3f').policy),
    `http://127.0.0.1:${(lzwUpstream.address() as AddressInfo).port}`)
  try {
    for (const [path, expected] of [['/api/text', text], ['/api/big', big]] as const) {
      const res = await request(`${gw.url}${path}`, { headers: { 'accept-encoding': 'compress' } })
      const body = Buffer.from(await res.body.arrayBuffer())
      assert.equal(res.headers['content-encoding'], 'compress')
      assert.deepEqual([...body.subarray(0, 3)], [0x1f, 0x9d, 0x90], 'the .Z header, 16-bit block mode')
      assert.equal(execFileSync('gzip', ['-dc'], { input: body, maxBuffer: 1 << 26 }).toString(), expected, path)
      assert.ok(body.length < expected.length, 'actually compressed')
    }
    // gzip still wins when the client prefers it; compress is never chosen unless listed.
    const gz = await request(`${gw.url}/api/x`, { headers: { 'accept-encoding': 'gzip, compress' } })
    assert.equal(gz.headers['content-encoding'], 'gzip')
    await gz.body.arrayBuffer()
    const plain = await get('/json', 'compress')
    assert.equal(plain.res.headers['content-encoding'], undefined, 'the default list has no compress')
  } finally {
    await gw.close()
    lzwUpstream.closeAllConnections()
    await new Promise<void>((r) => lzwUpstream.close(() => r()))
  }
})

test('the LZW encoder: sizes across every code-width change and a full table, split at any chunk size, all read back by gzip -d', async () => {
  const { execFileSync } = await import('node:child_process')
  const { randomBytes } = await import('node:crypto')
  const { createLzwCompress } = await import('@gw/cli/policy/lzw-compress')
  const encode = async (input: Buffer, chunk: number) => {
    const t = createLzwCompress()
    const out: Buffer[] = []
    t.on('data', (c: Buffer) => out.push(c))
    const ended = new Promise((r) => t.on('end', r))
    for (let i = 0; i < input.length; i += chunk) t.write(input.subarray(i, i + chunk))
    t.end()
    await ended
    return Buffer.concat(out)
  }
  for (const size of [0, 1, 2, 255, 256, 257, 600, 1500, 5000, 40_000, 140_000]) {
    const input = Buffer.concat([randomBytes(size >> 1), Buffer.from('abcabcabd'.repeat(Math.ceil(size / 18))).subarray(0, size - (size >> 1))])
    for (const chunk of [1, 1000, 1 << 20]) {
      if (chunk === 1 && size > 5000) continue
      const z = await encode(input, chunk)
      assert.ok(execFileSync('gzip', ['-dc'], { input: z, maxBuffer: 1 << 26 }).equals(input), `size ${size}, chunks of ${chunk}`)
    }
  }
})
