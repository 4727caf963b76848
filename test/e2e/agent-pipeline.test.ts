/**
 * The agent's one pipeline, end to end through a real relay, agent and upstream: what
 * a public client sees for Expect: 100-continue, errors raised in on_http_response,
 * `${req.url}`, upgrade requests and request targets that would mean one path to the
 * policy and another to the upstream. Raw sockets where a client library would tidy the
 * request up (absolute form, dot segments, Expect).
 */
import { it, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { Pool } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { compilePolicy } from '@gw/cli/policy/index'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { startStack, type Stack } from '../helpers/stack.js'

interface Seen {
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One relay + agent with `policyDoc` + an upstream that records what reached it and echoes it. */
async function startTunnel(policyDoc: Parameters<typeof compilePolicy>[0], answer?: (seen: Seen) => { status?: number; headers?: Record<string, string>; body?: string }) {
  const seen: Seen[] = []
  const stack: Stack = await startStack((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      seen.push(s)
      const a = answer?.(s) ?? {}
      res.writeHead(a.status ?? 200, { 'content-type': 'application/json', ...a.headers })
      res.end(a.body ?? JSON.stringify(s))
    })
  })
  const agent: Agent = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: stack.upstream.url, policy: compilePolicy(policyDoc) }] })
  const host = `${agent.tunnels[0]!.publicName}.localhost`
  const port = Number(new URL(stack.httpOrigin).port)
  return {
    stack, agent, host, port, seen,
    async close() {
      await agent.close()
      await stack.close()
    },
  }
}

/**
 * Send raw bytes and collect what comes back until the server closes or `until` matches.
 * `afterFirst` runs when the first bytes arrive (to send a body after a 100).
 */
function rawRequest(port: number, text: string, options: { until?: RegExp; onData?: (so: ReturnType<typeof connect>, all: string) => void; ms?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let all = ''
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(all)
    }, options.ms ?? 5000)
    socket.on('data', (chunk: Buffer) => {
      all += chunk.toString('latin1')
      options.onData?.(socket, all)
      if (options.until?.test(all)) {
        clearTimeout(timer)
        socket.destroy()
        resolve(all)
      }
    })
    socket.on('end', () => {
      clearTimeout(timer)
      resolve(all)
    })
    socket.on('error', reject)
    socket.write(text)
  })
}

const AUTH = { on_http_request: [{ actions: [{ type: 'basic-auth', config: { credentials: ['alice:wonder'] } }] }] }
const GOOD = `Basic ${Buffer.from('alice:wonder').toString('base64')}`

describe('Expect: 100-continue', () => {
  let t: Awaited<ReturnType<typeof startTunnel>>
  before(async () => {
    t = await startTunnel(AUTH)
  })
  after(() => t.close())

  it('gets no 100 for a request the request phase refuses, only the 401', async () => {
    const out = await rawRequest(t.port, `POST /upload HTTP/1.1\r\nHost: ${t.host}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`, { until: /\r\n\r\n[\s\S]*$/ })
    assert.match(out, /^HTTP\/1\.1 401 /)
    assert.doesNotMatch(out, /100 Continue/)
    assert.equal(t.seen.length, 0)
  })

  it('gets the 100 once the upstream call needs the body, then the answer', async () => {
    let sent = false
    const out = await rawRequest(t.port, `POST /upload HTTP/1.1\r\nHost: ${t.host}\r\nAuthorization: ${GOOD}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`, {
      onData: (socket, all) => {
        if (!sent && /^HTTP\/1\.1 100 Continue\r\n\r\n/.test(all)) {
          sent = true
          socket.write('hello')
        }
      },
    })
    assert.match(out, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /)
    assert.equal(t.seen.at(-1)?.body, 'hello')
  })
})

it('an error raised by an on_http_response action reaches the client with its status and gw-error-code', async () => {
  const t = await startTunnel(
    { on_http_response: [{ actions: [{ type: 'transform-body', config: { from: 'json', to: 'xml' } }] }] },
    () => ({ body: '{not json' }),
  )
  const pool = new Pool(t.stack.httpOrigin)
  try {
    const res = await pool.request({ path: '/data', method: 'GET', headers: { host: t.host } })
    const body = await res.body.text()
    assert.equal(res.statusCode, 502)
    assert.equal(res.headers['gw-error-code'], 'GW_ERR_POLICY_BAD_UPSTREAM_BODY')
    assert.match(body, /could not be converted/)
  } finally {
    await pool.close()
    await t.close()
  }
})

it('an upstream cannot forge gw-error-code, with or without a policy', async () => {
  for (const doc of [{}, { on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-seen': 'yes' } } }] }] }]) {
    const t = await startTunnel(doc, () => ({ headers: { 'gw-error-code': 'GW_ERR_FORGED' } }))
    const pool = new Pool(t.stack.httpOrigin)
    try {
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: t.host } })
      await res.body.text()
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['gw-error-code'], undefined)
    } finally {
      await pool.close()
      await t.close()
    }
  }
})

it('${req.url} is the URL string, its parts beside it, and never the headers', async () => {
  const t = await startTunnel({
    on_http_request: [{ actions: [
      { type: 'add-headers', config: { headers: { 'x-url': '${req.url}', 'x-path': '${req.url.path}', 'x-query': '${req.url.query}', 'x-req': '${req}' } } },
    ] }],
  })
  const pool = new Pool(t.stack.httpOrigin)
  try {
    const res = await pool.request({ path: '/a/b?c=1', method: 'GET', headers: { host: t.host, authorization: 'Bearer s3cret-token', cookie: 'session=s3cret-cookie' } })
    await res.body.text()
    const h = t.seen.at(-1)!.headers
    assert.equal(h['x-url'], `http://${t.host}/a/b?c=1`)
    assert.equal(h['x-path'], '/a/b')
    assert.equal(h['x-query'], 'c=1')
    for (const name of ['x-url', 'x-req']) assert.doesNotMatch(String(h[name]), /s3cret/, `${name} must not carry credentials`)
  } finally {
    await pool.close()
    await t.close()
  }
})

describe('upgrade requests pass the request phase', () => {
  let t: Awaited<ReturnType<typeof startTunnel>>
  let wss: WebSocketServer
  before(async () => {
    t = await startTunnel(AUTH)
    wss = new WebSocketServer({ server: t.stack.upstream.server, perMessageDeflate: false })
    wss.on('connection', (socket, req) => {
      t.seen.push({ method: 'WS', url: req.url!, headers: req.headers, body: '' })
      socket.on('message', (data) => socket.send(data))
    })
  })
  after(async () => {
    wss.close()
    await t.close()
  })

  it('refuses Connection: Upgrade without credentials before anything reaches the upstream', async () => {
    const before = t.seen.length
    const out = await rawRequest(t.port, `GET /secret HTTP/1.1\r\nHost: ${t.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`)
    assert.match(out, /^HTTP\/1\.1 401 /)
    assert.equal(t.seen.length, before, 'the upstream got nothing')
  })

  it('carries a WebSocket with credentials, and strips a forged identity header', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${t.port}/live`, { headers: { host: t.host, authorization: GOOD, 'x-gw-oidc-email': 'mallory@evil.test' } })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => ws.send('ping'))
      ws.once('message', (data) => {
        assert.equal(String(data), 'ping')
        resolve()
      })
      ws.once('error', reject)
    })
    ws.close()
    const hit = t.seen.at(-1)!
    assert.equal(hit.method, 'WS')
    assert.equal(hit.headers['x-gw-oidc-email'], undefined)
  })

  it('refuses Upgrade: h2c with 400 and a stable code', async () => {
    const before = t.seen.length
    const out = await rawRequest(t.port, `GET / HTTP/1.1\r\nHost: ${t.host}\r\nAuthorization: ${GOOD}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`)
    assert.match(out, /^HTTP\/1\.1 400 /)
    assert.match(out, /gw-error-code: GW_ERR_BAD_REQUEST/i)
    assert.equal(t.seen.length, before)
  })
})

it('strips client-sent identity headers on ordinary requests through a policy', async () => {
  const t = await startTunnel(AUTH)
  const pool = new Pool(t.stack.httpOrigin)
  try {
    const res = await pool.request({ path: '/', method: 'GET', headers: { host: t.host, authorization: GOOD, 'X-Gw-Oidc-Email': 'mallory@evil.test', 'x-gw-oidc-sub': '1' } })
    await res.body.text()
    assert.equal(res.statusCode, 200)
    const h = t.seen.at(-1)!.headers
    assert.equal(h['x-gw-oidc-email'], undefined)
    assert.equal(h['x-gw-oidc-sub'], undefined)
  } finally {
    await pool.close()
    await t.close()
  }
})

describe('the request target is normalised once, before the policy', () => {
  let t: Awaited<ReturnType<typeof startTunnel>>
  before(async () => {
    t = await startTunnel({ on_http_request: [{ expressions: ["req.url.path.startsWith('/admin')"], actions: [{ type: 'deny', config: { status_code: 403 } }] }] })
  })
  after(() => t.close())

  const send = (target: string, host = t.host) =>
    rawRequest(t.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)

  for (const target of ['/admin/x', '/x/../admin', '//admin', '/./admin/', '/x/%2e%2e/admin']) {
    it(`a deny rule on /admin holds for ${target}`, async () => {
      const before = t.seen.length
      const out = await send(target)
      assert.match(out, /^HTTP\/1\.1 (403|400) /)
      assert.equal(t.seen.length, before, 'the upstream got nothing')
    })
  }

  it('absolute form: the policy sees the path, not the whole URL', async () => {
    const before = t.seen.length
    const out = await send(`http://${t.host}:${t.port}/admin/x`, `${t.host}:${t.port}`)
    assert.match(out, /^HTTP\/1\.1 403 /)
    assert.equal(t.seen.length, before)
    const ok = await send(`http://${t.host}:${t.port}/public?q=1`, `${t.host}:${t.port}`)
    assert.match(ok, /^HTTP\/1\.1 200 /)
    assert.equal(t.seen.at(-1)!.url, '/public?q=1')
  })

  it('the upstream gets the same path the policy saw', async () => {
    const out = await send('/a/./b//c/../d?x=/../y')
    assert.match(out, /^HTTP\/1\.1 200 /)
    assert.equal(t.seen.at(-1)!.url, '/a/b/d?x=/../y')
  })

  for (const [target, why] of [['/a%2Fb', 'an encoded slash'], ['/a%5cb', 'an encoded backslash'], ['/%2e%2e/x', 'an encoded dot segment'], ['/a%zz', 'broken percent-encoding']]) {
    it(`refuses ${why} with 400 GW_ERR_REQUEST_TARGET_INVALID`, async () => {
      const out = await send(target!)
      assert.match(out, /^HTTP\/1\.1 400 /)
      assert.match(out, /gw-error-code: GW_ERR_REQUEST_TARGET_INVALID/i)
    })
  }

  it('refuses an absolute-form target naming another host', async () => {
    const out = await send('http://other.example/x')
    assert.match(out, /^HTTP\/1\.1 400 /)
    assert.match(out, /gw-error-code: GW_ERR_REQUEST_TARGET_INVALID/i)
  })
})
