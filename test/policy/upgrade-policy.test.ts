/**
 * Upgrade requests pass the request phase like any other request (issue 9's critical
 * finding): an app without an upgrade handler answers `Connection: Upgrade` as a normal
 * request, so skipping the policy for them served protected pages without credentials.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { compilePolicy } from '@gw/cli/policy/index'
import { startPolicyTunnel } from './tunnel-stack.js'

let upstream: Server
let upstreamUrl: string
const seen: Array<{ url: string; headers: Record<string, unknown> }> = []

before(async () => {
  // A plain app with a WebSocket endpoint at /ws; everything else is an ordinary page.
  upstream = createServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers })
    res.end(`secret page ${req.url}`)
  })
  const wss = new WebSocketServer({ noServer: true })
  upstream.on('upgrade', (req, socket, head) => {
    seen.push({ url: req.url!, headers: req.headers })
    if (!req.url!.startsWith('/ws')) return socket.destroy()
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(`echo ${m}`)))
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
})

after(async () => {
  upstream.closeAllConnections()
  await new Promise((resolve) => upstream.close(resolve))
})

const BASIC_AUTH = { on_http_request: [{ actions: [{ type: 'basic-auth', config: { credentials: ['alice:s3cret'] } }] }] }

// Asynchronous: the relay and agent answer curl from this very process.
const curl = async (args: string[]): Promise<string> => (await promisify(execFile)('curl', args, { encoding: 'utf8' })).stdout

function hasCurl(): boolean {
  return spawnSync('curl', ['--version']).status === 0
}

test('curl with Connection: Upgrade gets 401 from basic-auth, and the upstream sees nothing', { skip: !hasCurl() && 'curl is not installed' }, async () => {
  const tunnel = await startPolicyTunnel(compilePolicy(BASIC_AUTH), upstreamUrl)
  try {
    const before = seen.length
    const out = await curl([
      '-s', '-o', '-', '-w', '\n%{http_code}', '--max-time', '10',
      '-H', `Host: ${tunnel.host}`, '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket',
      `${tunnel.origin}/secret`,
    ])
    const status = out.trim().split('\n').pop()
    assert.equal(status, '401', `curl printed ${JSON.stringify(out)}`)
    assert.doesNotMatch(out, /secret page/)
    assert.equal(seen.length, before, 'the upstream was never asked')
  } finally {
    await tunnel.close()
  }
})

test('a WebSocket through basic-auth: refused without credentials, echoed with them', async () => {
  const tunnel = await startPolicyTunnel(compilePolicy(BASIC_AUTH), upstreamUrl)
  try {
    const url = `ws://${tunnel.origin.slice('http://'.length)}/ws`
    const refused = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { host: tunnel.host } })
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!))
      ws.on('open', () => reject(new Error('the upgrade went through without credentials')))
      ws.on('error', () => {})
    })
    assert.equal(refused, 401)

    const auth = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`
    const ws = new WebSocket(url, { headers: { host: tunnel.host, authorization: auth } })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    ws.send('hi')
    const reply = await new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))))
    assert.equal(reply, 'echo hi')
    ws.close()
  } finally {
    await tunnel.close()
  }
})

test('deny and add-headers apply to upgrades; the rewritten request reaches the upstream', async () => {
  const policy = compilePolicy({
    on_http_request: [
      { expressions: ["req.url.path.startsWith('/admin')"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
      { actions: [{ type: 'add-headers', config: { headers: { 'x-from-policy': 'yes' } } }] },
    ],
  })
  const tunnel = await startPolicyTunnel(policy, upstreamUrl)
  try {
    const url = `ws://${tunnel.origin.slice('http://'.length)}`
    const denied = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${url}/admin/ws`, { headers: { host: tunnel.host } })
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!))
      ws.on('error', () => {})
    })
    assert.equal(denied, 403)

    const ws = new WebSocket(`${url}/ws`, { headers: { host: tunnel.host } })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    const last = seen[seen.length - 1]!
    assert.equal(last.url, '/ws')
    assert.equal(last.headers['x-from-policy'], 'yes')
    ws.close()
  } finally {
    await tunnel.close()
  }
})

test('Upgrade: h2c is refused with 400 and never forwarded', { skip: !hasCurl() && 'curl is not installed' }, async () => {
  const tunnel = await startPolicyTunnel(compilePolicy({ on_http_request: [] }), upstreamUrl)
  try {
    const before = seen.length
    // curl --http2 on an http:// URL asks for h2c with Upgrade: h2c and HTTP2-Settings.
    const out = await curl(['-s', '-D', '-', '-o', '/dev/null', '--max-time', '10', '--http2',
      '-H', `Host: ${tunnel.host}`, `${tunnel.origin}/`])
    assert.match(out, /^HTTP\/1\.1 400 /, out)
    assert.match(out, /gw-error-code: GW_ERR_BAD_REQUEST/i)
    assert.equal(seen.length, before, 'the upstream was never asked')
  } finally {
    await tunnel.close()
  }
})
