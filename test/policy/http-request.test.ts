/**
 * `http-request`, from ngrok's docs examples: the policy calls an internal endpoint of
 * the agent (through that endpoint's own policy and upstream) or an outside URL, and
 * later rules read `actions.ngrok.http_request.*`; all through the real relay and agent.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rmSync } from 'node:fs'
import { request } from 'undici'
import { startRelay } from '@gw/relay'
import { startAgent, type AgentEndpointOptions } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import { startEchoUpstream } from './tunnel-stack.js'
import { fixture } from './ngrok-docs.js'
import { tempDir } from '../helpers/stack.js'

let pub: Awaited<ReturnType<typeof startEchoUpstream>>
let bin: Server
let binUrl: string
const flakyCalls = new Map<string, number>()
const seen: Array<{ method: string; url: string; headers: Record<string, unknown>; body: string }> = []

before(async () => {
  pub = await startEchoUpstream('public')
  // httpbin, reduced: what ngrok's examples call.
  bin = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() })
      const m = /^\/redirect\/(\d+)$/.exec(req.url!)
      if (m) {
        const n = Number(m[1])
        res.writeHead(302, { location: n > 1 ? `/redirect/${n - 1}` : '/get' })
        return res.end()
      }
      if (req.url === '/slow') return // never answers
      // /flaky/<key>/<n>: 500 for the first n calls with that key, then 200.
      const flaky = /^\/flaky\/(\w+)\/(\d+)$/.exec(req.url!)
      if (flaky) {
        const calls = (flakyCalls.get(flaky[1]!) ?? 0) + 1
        flakyCalls.set(flaky[1]!, calls)
        if (calls <= Number(flaky[2])) {
          res.statusCode = 500
          return res.end('not yet')
        }
      }
      if (req.url === '/reset') return req.socket.destroy()
      if (req.url === '/huge') return res.end('x'.repeat(300 * 1024))
      res.setHeader('content-type', 'application/json')
      res.setHeader('x-bin', 'yes')
      res.end(JSON.stringify({ url: req.url, ok: true }))
    })
  })
  await new Promise<void>((r) => bin.listen(0, '127.0.0.1', r))
  binUrl = `http://127.0.0.1:${(bin.address() as AddressInfo).port}`
})
after(async () => {
  await pub.close()
  bin.closeAllConnections()
  await new Promise<void>((r) => bin.close(() => r()))
})

/** A docs example's rules, then one that answers with what the action recorded. */
function withReport(id: string | unknown): unknown {
  const doc = (typeof id === 'string' ? JSON.parse(JSON.stringify(fixture(id).policy)) : id) as { on_http_request: unknown[] }
  doc.on_http_request.push({ actions: [{ type: 'custom-response', config: { status_code: 200, headers: { 'content-type': 'application/json' }, body: '${actions.ngrok.http_request}' } }] })
  return doc
}

async function withAgent(endpoints: AgentEndpointOptions[], fn: (get: (path: string, headers?: Record<string, string>) => Promise<{ status: number; headers: Record<string, unknown>; text: string }>) => Promise<void>): Promise<void> {
  const stateDir = tempDir('gw-http-request-')
  const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir })
  const agent = await startAgent({ relay: relay.httpUrl!, endpoints })
  try {
    const host = `${agent.tunnels[0]!.publicName}.localhost`
    await fn(async (path, headers = {}) => {
      const res = await request(`${relay.httpUrl}${path}`, { headers: { host, ...headers } })
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
    })
  } finally {
    await agent.close()
    await relay.close()
    rmSync(stateDir, { recursive: true, force: true })
  }
}

/** The http-request action's result, as the report rule printed it (CEL's JSON of a map). */
function report(text: string): any {
  return JSON.parse(text)
}

test('http-request to internal endpoints (ngrok\'s examples): GET, POST with an interpolated body, query params, redirects; the internal endpoint\'s policy runs', async () => {
  const internal = (host: string, policy?: unknown): AgentEndpointOptions => ({ upstream: binUrl, internalHost: host, ...(policy ? { policy: compilePolicy(policy) } : {}) })
  await withAgent([
    { upstream: pub.url, policy: compilePolicy(withReport('traffic-policy-actions-http-request-9e4064')) },
    internal('upstream-service.internal', { on_http_request: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-via-internal-policy': '1' } } }] }] }),
  ], async (get) => {
    seen.length = 0
    const r = report((await get('/')).text)
    assert.equal(r.res.status_code, 200)
    assert.equal(JSON.parse(r.res.body).url, '/ping')
    assert.deepEqual(r.res.header['x-bin'], ['yes'])
    assert.equal(r.req.method, 'GET')
    assert.equal(r.req.url, 'https://upstream-service.internal/ping')
    assert.equal(r.attempts.length, 1)
    assert.equal(seen[0]!.headers['x-via-internal-policy'], '1', 'the internal endpoint\'s own policy ran')
  })
  // ngrok's POST example writes req.headers[\"x-user-id\"] (backslashes, not CEL; refused, docs-wrong): as meant.
  const post = JSON.parse(JSON.stringify(fixture('traffic-policy-actions-http-request-a336e1').policy)) as { on_http_request: Array<{ actions: Array<{ config: { body: string } }> }> }
  post.on_http_request[0]!.actions[0]!.config.body = '{ "user": "${req.headers[\'x-user-id\'][0]}" }'
  await withAgent([
    { upstream: pub.url, policy: compilePolicy(withReport(post)) },
    internal('httpbin.internal'),
  ], async (get) => {
    seen.length = 0
    const r = report((await get('/', { 'x-user-id': 'u-42' })).text)
    assert.equal(r.res.status_code, 200)
    assert.equal(seen[0]!.method, 'POST')
    assert.equal(seen[0]!.body, '{ "user": "u-42" }')
    assert.equal(seen[0]!.headers['x-custom-header'], 'abc123')
    assert.equal(seen[0]!.headers['content-type'], 'application/json')
  })
  await withAgent([
    { upstream: pub.url, policy: compilePolicy(withReport('traffic-policy-actions-http-request-eb94dd')) },
    internal('httpbin.internal'),
  ], async (get) => {
    seen.length = 0
    await get('/')
    // ngrok's example passes the text req.headers["x-user-id"], not ${…}: it is sent as written.
    assert.equal(seen[0]!.url, '/get?trace=true&user=req.headers%5B%22x-user-id%22%5D')
  })
  await withAgent([
    { upstream: pub.url, policy: compilePolicy(withReport('traffic-policy-actions-http-request-70ac35')) },
    internal('httpbin.internal'),
  ], async (get) => {
    seen.length = 0
    const r = report((await get('/')).text)
    assert.deepEqual(seen.map((s) => s.url), ['/redirect/2', '/redirect/1', '/get'])
    assert.equal(r.res.status_code, 200)
    assert.deepEqual(r.attempts.map((a: { response_status_code: number }) => a.response_status_code), [302, 302, 200])
  })
})

test('http-request: an outside URL, failures recorded (on_error: continue) or answered 502 (halt), the size cap and a call loop', async () => {
  const call = (config: Record<string, unknown>, extra: unknown[] = []) => compilePolicy(withReport({ on_http_request: [{ actions: [{ type: 'http-request', config }] }, ...extra] }))
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/ext`, method: 'PUT', body: 'from ${conn.client_ip}', max_redirects: 1 }) }], async (get) => {
    seen.length = 0
    const r = report((await get('/')).text)
    assert.equal(r.res.status_code, 200)
    assert.equal(seen[0]!.method, 'PUT')
    assert.equal(seen[0]!.body, 'from 127.0.0.1')
  })
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/redirect/3`, max_redirects: 1 }) }], async (get) => {
    const r = report((await get('/')).text)
    assert.match(r.error.message, /more than 1 redirect/)
    assert.equal(r.error.code, 'GW_ERR_POLICY_HTTP_REQUEST_FAILED')
  })
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/huge` }) }], async (get) => {
    assert.match(report((await get('/')).text).error.message, /response size exceeded/)
  })
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/slow`, timeout: '1s', on_error: 'halt' }) }], async (get) => {
    const res = await get('/')
    assert.equal(res.status, 502)
    assert.equal(res.headers['gw-error-code'], 'GW_ERR_POLICY_HTTP_REQUEST_FAILED')
    assert.match(res.text, /no answer within the timeout of 1000 ms/)
  })
  await withAgent([{ upstream: pub.url, policy: call({ url: 'https://nowhere.internal/x' }) }], async (get) => {
    assert.equal(report((await get('/')).text).error.code, 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND')
  })
  // An internal endpoint whose policy calls itself: stopped after 3 internal requests.
  const selfCall = { on_http_request: [{ actions: [{ type: 'http-request', config: { url: 'https://loop.internal/', on_error: 'halt' } }] }] }
  await withAgent([
    { upstream: pub.url, policy: call({ url: 'https://loop.internal/' }) },
    { upstream: binUrl, internalHost: 'loop.internal', policy: compilePolicy(selfCall) },
  ], async (get) => {
    seen.length = 0
    const r = report((await get('/')).text)
    // The third internal request in the chain is refused (its level answers 502, halt); the two
    // levels above it got an answer and went on to their upstream.
    assert.equal(r.res.status_code, 200)
    assert.equal(seen.length, 2)
  })
})

test('http-request retry_condition (ngrok\'s config page): retried while the condition holds after a failed attempt, at most 3 more times, with attempts and last_attempt', async () => {
  const call = (config: Record<string, unknown>) => compilePolicy(withReport({ on_http_request: [{ actions: [{ type: 'http-request', config }] }] }))
  const hits = (url: string) => seen.filter((s) => s.url === url).length
  // ngrok's own example condition: two 500s, then the third attempt answers.
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/flaky/a/2`, retry_condition: 'last_attempt.res.statusCode == 500' }) }], async (get) => {
    seen.length = 0
    const r = report((await get('/')).text)
    assert.equal(r.res.status_code, 200)
    assert.equal(hits('/flaky/a/2'), 3)
    assert.deepEqual(r.attempts.map((a: { response_status_code: number }) => a.response_status_code), [500, 500, 200])
  })
  // A condition that always holds: 1 attempt + 3 retries, then the last answer stands.
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/flaky/b/100`, retry_condition: 'attempts < 100 && last_attempt.req.method == "GET"' }) }], async (get) => {
    seen.length = 0
    const r = report((await get('/')).text)
    assert.equal(r.res.status_code, 500)
    assert.equal(hits('/flaky/b/100'), 4)
  })
  // An attempt that gets no answer: last_attempt.error is set and res is absent; attempts counts.
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/reset`, retry_condition: "last_attempt.error != '' && !has(last_attempt.res) && attempts < 2" }) }], async (get) => {
    seen.length = 0
    const r = report((await get('/')).text)
    assert.equal(r.error.code, 'GW_ERR_POLICY_HTTP_REQUEST_FAILED')
    assert.equal(hits('/reset'), 2)
  })
  // A successful attempt is never retried, whatever the condition says; no condition: one try.
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/ok`, retry_condition: 'true' }) }], async (get) => {
    seen.length = 0
    assert.equal(report((await get('/')).text).res.status_code, 200)
    assert.equal(hits('/ok'), 1)
  })
  await withAgent([{ upstream: pub.url, policy: call({ url: `${binUrl}/flaky/c/1` }) }], async (get) => {
    seen.length = 0
    assert.equal(report((await get('/')).text).res.status_code, 500)
    assert.equal(hits('/flaky/c/1'), 1)
  })
})

test('http-request config is checked at load', () => {
  const err = (config: unknown) => {
    try {
      compilePolicy({ on_http_request: [{ actions: [{ type: 'http-request', config }] }] })
      return ''
    } catch (e) {
      return (e as Error).message
    }
  }
  assert.match(err({}), /config\.url: is required and must be a string/)
  assert.match(err({ url: 'ftp://x' }), /config\.url: must be an http\(s\) URL, such as https:\/\/api\.internal\/check, got "ftp:\/\/x"/)
  assert.match(err({ url: 'https://a.internal', method: 'HEAD' }), /config\.method: is not a known value: "HEAD"; allowed values: GET, PUT, POST, PATCH, DELETE, OPTIONS/)
  assert.match(err({ url: 'https://a.internal', max_redirects: 6 }), /config\.max_redirects: must be an integer from 0 to 5, got 6/)
  assert.match(err({ url: 'https://a.internal', timeout: '31s' }), /config\.timeout: must be between 1000ms and 30000ms/)
  assert.equal(err({ url: 'https://a.internal', retry_condition: 'attempts < 2' }), '')
  assert.match(err({ url: 'https://a.internal', retry_condition: 'attempts' }), /config\.retry_condition: invalid CEL expression "attempts": must be a boolean expression, but its type is int/)
  assert.match(err({ url: 'https://a.internal', retry_condition: 'tries < 2' }), /config\.retry_condition: invalid CEL expression "tries < 2": .*tries/)
  // attempts and last_attempt belong to retry_condition alone.
  assert.throws(() => compilePolicy({ on_http_request: [{ expressions: ['attempts < 2'], actions: [{ type: 'deny' }] }] }), /expressions\[0\]: invalid CEL expression "attempts < 2"/)
  assert.match(err({ url: 'https://a.internal', query_params: [{ key: 'a' }] }), /query_params\[0\]\.value: is required/)
})
