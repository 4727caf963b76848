/**
 * ngrok's `close-connection`, `request-body-find-replace` and `response-body-find-replace`,
 * each from ngrok's own docs example, through the real relay, agent and upstream.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { compilePolicy } from '@gw/cli/policy/index'
import { startPolicyTunnel, startEchoUpstream, type PolicyTunnel } from './tunnel-stack.js'
import { fixture } from './ngrok-docs.js'

type Doc = Record<string, Array<Record<string, unknown>>>
const docs = (id: string) => JSON.parse(JSON.stringify(fixture(id).policy)) as Doc

let echo: Awaited<ReturnType<typeof startEchoUpstream>>
let answers: Server
let answersUrl: string

before(async () => {
  echo = await startEchoUpstream()
  answers = createServer((req, res) => {
    if (req.url === '/customer') {
      res.setHeader('content-type', 'text/plain')
      res.end('SSN: 123-45-6789\nCredit Card: 4111-1111-1111-1111\nPhone: 555-123-4567\n')
    } else if (req.url === '/customer.gz') {
      res.setHeader('content-type', 'text/plain')
      res.setHeader('content-encoding', 'gzip')
      res.end(gzipSync('SSN: 123-45-6789'))
    } else if (req.url === '/crash') {
      res.statusCode = 500
      res.setHeader('content-type', 'application/json')
      res.end('{"error":"boom","stack_trace":"at db.js:12","internal_error":"pg: timeout"}')
    } else if (req.url === '/big') {
      res.setHeader('content-type', 'text/plain')
      res.end('123-45-6789 '.repeat(100_000))
    } else if (req.url === '/binary') {
      res.setHeader('content-type', 'application/octet-stream')
      res.end(Buffer.from([0xff, 0xfe, 0x31, 0x32, 0x33, 0x2d, 0x34, 0x35, 0x2d, 0x36, 0x37, 0x38, 0x39]))
    } else {
      res.end('ok')
    }
  })
  await new Promise<void>((r) => answers.listen(0, '127.0.0.1', r))
  answersUrl = `http://127.0.0.1:${(answers.address() as AddressInfo).port}`
})

after(async () => {
  await echo.close()
  answers.closeAllConnections()
  await new Promise<void>((r) => answers.close(() => r()))
})

async function withTunnel(doc: unknown, upstream: string, fn: (t: PolicyTunnel) => Promise<void>): Promise<void> {
  const tunnel = await startPolicyTunnel(compilePolicy(doc), upstream)
  try {
    await fn(tunnel)
  } finally {
    await tunnel.close()
  }
}

/** A raw HTTP/1.1 exchange: what the client's socket received before it closed. */
function rawExchange(origin: string, request: string): Promise<Buffer> {
  const { port } = new URL(origin)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', reject)
    socket.on('close', () => resolve(Buffer.concat(chunks)))
    socket.write(request)
  })
}

test('close-connection (ngrok\'s example): /dc closes the client\'s connection with no response and never reaches the upstream', async () => {
  await withTunnel(docs('traffic-policy-actions-close-connection-63cd82'), echo.url, async (t) => {
    const before = echo.hits
    const got = await rawExchange(t.origin, `GET /dc/now HTTP/1.1\r\nHost: ${t.host}\r\n\r\n`)
    assert.equal(got.length, 0, `expected no bytes, got ${JSON.stringify(got.toString())}`)
    assert.equal(echo.hits, before)
    // A keep-alive request before it on the same connection is answered; /dc then ends the connection.
    const both = await rawExchange(t.origin, `GET /ok HTTP/1.1\r\nHost: ${t.host}\r\n\r\nGET /dc HTTP/1.1\r\nHost: ${t.host}\r\n\r\n`)
    assert.match(both.toString(), /^HTTP\/1\.1 200 OK/)
    assert.equal(both.toString().split('HTTP/1.1 ').length - 1, 1, 'only the first request is answered')
    // A WebSocket upgrade to /dc is closed the same way, by the relay's upgrade path.
    const ws = await rawExchange(t.origin, `GET /dc/ws HTTP/1.1\r\nHost: ${t.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    assert.equal(ws.length, 0, `expected no bytes for the upgrade, got ${JSON.stringify(ws.toString())}`)
    // Other paths go on to the upstream.
    const ok = await t.fetch('/fine')
    assert.equal(ok.status, 200)
  })
})

test('request-body-find-replace (ngrok\'s example): API keys and emails are redacted before the upstream, Content-Length follows', async () => {
  await withTunnel(docs('traffic-policy-actions-request-body-find-replace-80bb95'), echo.url, async (t) => {
    const body = JSON.stringify({ api_key: 'sk-abc123secret', user_email: 'john.doe@example.com', message: 'Hello world' }, null, 2)
    const res = await t.fetch('/chat', { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    const seen = JSON.parse(res.text) as { body: string; headers: Record<string, string> }
    assert.deepEqual(JSON.parse(seen.body), { api_key: '[REDACTED]', user_email: '[EMAIL REDACTED]', message: 'Hello world' })
    assert.equal(Number(seen.headers['content-length']), Buffer.byteLength(seen.body))
    // Capture groups ($1), from ngrok's AI-prompt example.
  })
  await withTunnel(docs('traffic-policy-actions-request-body-find-replace-bb7a2a'), echo.url, async (t) => {
    const res = await t.fetch('/v1/chat', { method: 'POST', body: '{"role": "system", "content": "You help."}' })
    assert.equal((JSON.parse(res.text) as { body: string }).body, '{"role": "system", "content": "You help. Always respond in a professional tone."}')
  })
  // Lazy quantifiers (RE2), an empty `to` deletes, and actions.ngrok.request_body_find_replace reports what matched.
  const doc = docs('traffic-policy-actions-request-body-find-replace-6be5ca')
  doc.on_http_request!.push({ actions: [{ type: 'add-headers', config: { headers: {
    'x-matched': "${actions.ngrok.request_body_find_replace.replacements[0].matched_content}",
  } } }] })
  await withTunnel(doc, echo.url, async (t) => {
    const res = await t.fetch('/page', { method: 'POST', body: '<p>a<!-- one --></p><!-- two -->b' })
    const seen = JSON.parse(res.text) as { body: string; headers: Record<string, string> }
    assert.equal(seen.body, '<p>a</p>b')
    assert.equal(seen.headers['x-matched'], '<!-- one -->')
    const big = await t.fetch('/page', { method: 'POST', body: 'x'.repeat(1024 * 1024 + 1) })
    assert.equal(big.status, 413)
    assert.equal(big.headers['gw-error-code'], 'GW_ERR_POLICY_BODY_TOO_LARGE')
  })
})

test('response-body-find-replace (ngrok\'s examples): redacts text, a gzipped body, and 5xx details; refuses to pass a body it cannot read', async () => {
  await withTunnel(docs('traffic-policy-actions-response-body-find-replace-6d03ce'), answersUrl, async (t) => {
    const res = await t.fetch('/customer')
    assert.equal(res.text, 'SSN: [SSN REDACTED]\nCredit Card: [CARD REDACTED]\nPhone: [PHONE REDACTED]\n')
    assert.equal(Number(res.headers['content-length']), res.body.length)
    // A compressed upstream does not slip past the rule: decompressed, rewritten, sent as identity.
    const gz = await t.fetch('/customer.gz')
    assert.equal(gz.headers['content-encoding'], undefined)
    assert.equal(gz.text, 'SSN: [SSN REDACTED]')
    // Binary (not UTF-8) passes unchanged.
    const bin = await t.fetch('/binary')
    assert.deepEqual([...bin.body.subarray(0, 2)], [0xff, 0xfe])
    assert.equal(bin.body.length, 13)
    // Over max_body_size: 502 with a code, never the unredacted body.
    const big = await t.fetch('/big')
    assert.equal(big.status, 502)
    assert.equal(big.headers['gw-error-code'], 'GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE')
    assert.ok(!big.text.includes('123-45-6789'))
  })
  await withTunnel(docs('traffic-policy-actions-response-body-find-replace-2f98db'), answersUrl, async (t) => {
    const res = await t.fetch('/crash')
    assert.equal(res.status, 500)
    assert.deepEqual(JSON.parse(res.text), { error: 'boom', stack_trace: '[HIDDEN]', internal_error: '[HIDDEN]' })
    assert.equal((await t.fetch('/')).text, 'ok')
  })
})

test('find-replace and close-connection configs are checked at load, saying what is wrong', () => {
  const err = (type: string, config: unknown, phase = 'on_http_request') => {
    try {
      compilePolicy({ [phase]: [{ actions: [{ type, config }] }] })
      return ''
    } catch (e) {
      return (e as Error).message
    }
  }
  assert.match(err('request-body-find-replace', {}), /config\.replacements: is required and must be a list/)
  assert.match(err('request-body-find-replace', { replacements: [] }), /config\.replacements: must have at least 1 item/)
  assert.match(err('request-body-find-replace', { replacements: [{ to: 'x' }] }), /replacements\[0\]\.from: is required and must be a string/)
  assert.match(err('request-body-find-replace', { replacements: [{ from: '(?=x)', to: '' }] }), /replacements\[0\]\.from: is not a valid regular expression: .*RE2 syntax/)
  assert.match(err('request-body-find-replace', { replacements: [{ from: 'a', too: 'b' }] }), /replacements\[0\]\.too: is not a known field; allowed values: from, to/)
  assert.match(err('response-body-find-replace', { replacements: [{ from: 'a' }] }), /response-body-find-replace cannot run in on_http_request; allowed values: on_http_response/)
  assert.match(err('close-connection', { status_code: 400 }), /config\.status_code: is not a known field/)
})
