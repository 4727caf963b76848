/**
 * More policies through the real relay and agent: OIDC with a browser-like client
 * against oidc-provider, the SOAP bridge against a SOAP service, and rate limiting in
 * delay mode.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent as UndiciAgent } from 'undici'
import Provider from 'oidc-provider'
import { compilePolicy } from '@gw/cli/policy/index'
import { startEchoUpstream } from './tunnel-stack.js'
import { startPolicyTunnel } from './tunnel-stack.js'
import { Browser } from './browser.js'

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
async function close(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((r) => server.close(() => r()))
}

test('OIDC through the tunnel: redirect dance with a cookie jar, identity at the upstream', async () => {
  const idp = createServer()
  const issuer = await listen(idp)
  const upstream = await startEchoUpstream('app')
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'oidc', config: {
    issuer_url: issuer, client_id: 'tunnel-app', client_secret: 'tunnel-secret', cookie_secret: 'e2e',
  } }] }] })
  const tunnel = await startPolicyTunnel(policy, upstream.url)
  // The public URL is http://<name>.localhost:<relay port>; resolve *.localhost to the relay.
  const port = new URL(tunnel.origin).port
  const publicUrl = `http://${tunnel.host}:${port}`
  const dispatcher = new UndiciAgent({
    connect: {
      lookup: (_host: string, opts: { all?: boolean }, cb: (err: null, address: unknown, family?: number) => void) =>
        opts.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4),
    } as never,
  })
  const provider = new Provider(issuer, {
    clients: [{ client_id: 'tunnel-app', client_secret: 'tunnel-secret', redirect_uris: [`${publicUrl}/_gw/oidc/callback`], grant_types: ['authorization_code'], response_types: ['code'] }],
    async findAccount(_ctx: unknown, id: string) {
      return { accountId: id, async claims() { return { sub: id, email: `${id}@corp.test`, name: 'Tunnel User' } } }
    },
    claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
    cookies: { keys: ['k'] },
  })
  idp.on('request', provider.callback())
  try {
    const browser = new Browser(dispatcher)
    let res = await browser.fetch(`${publicUrl}/reports?q=1`)
    res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, { login: 'carol', password: 'x' })
    if ((res.headers.get('content-type') ?? '').includes('text/html')) res = await browser.submit(res, browser.trail.at(-1)!.split(' ')[1]!, {})
    assert.equal(res.status, 200, browser.trail.join('\n'))
    const seen = (await res.json()) as { url: string; headers: Record<string, string> }
    assert.equal(seen.url, '/reports?q=1')
    assert.equal(seen.headers['x-gw-oidc-email'], 'carol@corp.test')
    assert.equal(seen.headers['x-gw-oidc-sub'], 'carol')
  } finally {
    await tunnel.close()
    await dispatcher.close()
    await upstream.close()
    await close(idp)
  }
})

test('SOAP bridge through the tunnel', async () => {
  const soap = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c))
    req.on('end', () => {
      res.setHeader('content-type', 'text/xml; charset=utf-8')
      if (!body.includes('<m:Add ') || req.headers['soapaction'] !== '"urn:calc/Add"') {
        res.statusCode = 500
        res.end('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>unexpected request</faultstring></s:Fault></s:Body></s:Envelope>')
        return
      }
      const a = Number(/<m:a>(\d+)<\/m:a>/.exec(body)?.[1])
      const b = Number(/<m:b>(\d+)<\/m:b>/.exec(body)?.[1])
      res.end(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:AddResponse xmlns:m="urn:calc"><m:sum>${a + b}</m:sum></m:AddResponse></s:Body></s:Envelope>`)
    })
  })
  const soapUrl = await listen(soap)
  const policy = compilePolicy({ on_http_request: [{ expressions: ["req.url.path.startsWith('/calc/')"], actions: [
    { type: 'soap', config: { namespace: 'urn:calc', path: '/Calculator.asmx' } },
  ] }] })
  const tunnel = await startPolicyTunnel(policy, soapUrl)
  try {
    const ok = await tunnel.fetch('/calc/Add', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":2,"b":40}' })
    assert.equal(ok.status, 200)
    assert.deepEqual(JSON.parse(ok.text), { sum: 42 })
    const fault = await tunnel.fetch('/calc/Divide', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
    assert.equal(fault.status, 400)
    assert.equal(JSON.parse(fault.text).message, 'unexpected request')
  } finally {
    await tunnel.close()
    await close(soap)
  }
})

test('rate limit in delay mode through the tunnel: a burst is slowed, not refused, up to max_delay', async () => {
  const upstream = await startEchoUpstream()
  const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'rate-limit', config: {
    algorithm: 'token_bucket', capacity: 3, rate: '3s', mode: 'delay', max_delay: '1500ms',
  } }] }] })
  const tunnel = await startPolicyTunnel(policy, upstream.url)
  try {
    // One token a second: 3 pass at once, the 4th waits about a second for its token, and
    // the rest would wait 2 s or more, past max_delay, so they are refused at once.
    const statuses = await Promise.all(Array.from({ length: 8 }, () => tunnel.fetch('/').then((r) => r.status)))
    assert.deepEqual([...statuses].sort(), [200, 200, 200, 200, 429, 429, 429, 429])
  } finally {
    await tunnel.close()
    await upstream.close()
  }
})
