/**
 * forward-internal in on_tcp_connect, as ngrok's device-gateway and site-to-site examples
 * use it: a public tcp endpoint hands each connection to a tcp (or tls) internal endpoint,
 * `tcp://camera.internal:22`, of the same agent or of another agent of the same authtoken
 * through a real relay. Real sockets on 127.0.0.1: 1 MiB each way, hashed, with the
 * half-close kept; restrict-ips before the forward; the internal endpoint's own
 * on_tcp_connect; another token refused; a missing target closed (and logged) or, with
 * on_error: continue, the public endpoint's own upstream; TLS bytes passed through to a
 * tls internal endpoint; and the real gw binary (gw start with a config file, gw tcp --url
 * tcp://….internal:22) on the same relay.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent, type AgentEndpointOptions } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import { endpointSpec } from '@gw/cli/config/endpoint-spec'
import { spawnGw, tempDir, waitFor } from '../helpers/stack.js'
import { echo, exchange, portOf, sha256, startTcpServer, type TcpServer } from '../helpers/tcp.js'

const TOKEN_1 = 'tcp-internal-token-1-0123456789'
const TOKEN_2 = 'tcp-internal-token-2-0123456789'

let relay: Relay
let stateDir: string
/** Reads until the client's FIN, answers the hash of what it got, a newline, then 1 MiB of its own. */
let hasher: TcpServer
let hasherAnswer: Buffer
/** The public endpoints' own upstream: nothing forwarded should ever reach it. */
let own: TcpServer
const cleanups: Array<() => Promise<unknown> | unknown> = []

before(async () => {
  stateDir = tempDir('gw-tcp-internal-')
  relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir, tcpPorts: 'any', authtokens: [TOKEN_1, TOKEN_2] })
  hasherAnswer = randomBytes(1024 * 1024)
  hasher = await startTcpServer((socket) => {
    const chunks: Buffer[] = []
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.on('end', () => socket.end(Buffer.concat([Buffer.from(`${sha256(Buffer.concat(chunks))}\n`), hasherAnswer])))
  })
  own = await startTcpServer((socket) => socket.end('own upstream\n'))
})
after(async () => {
  for (const c of cleanups.reverse()) await c()
  await relay.close()
  await hasher.close()
  await own.close()
  rmSync(stateDir, { recursive: true, force: true })
})

function tcpPolicy(onTcpConnect: unknown[]) {
  return compilePolicy({ on_tcp_connect: onTcpConnect }, { kind: 'tcp' })
}

const forwardTo = (url: string, extra: Record<string, unknown> = {}) => ({ actions: [{ type: 'forward-internal', config: { url, ...extra } }] })

async function agent(authtoken: string, endpoints: AgentEndpointOptions[]): Promise<Agent> {
  const a = await startAgent({ relay: relay.httpUrl!, authtoken, backoff: { initial: 50, max: 200 }, endpoints })
  cleanups.push(() => a.close())
  return a
}

/** 1 MiB each way through the public endpoint at `port`, checked against the hasher's hashes. */
async function checkMiB(port: number): Promise<void> {
  const sent = randomBytes(1024 * 1024)
  const got = await exchange(port, sent)
  assert.equal(got.ending, 'end')
  const newline = got.received.indexOf(10)
  assert.ok(newline > 0, `no answer from the internal endpoint's upstream: ${got.received.subarray(0, 80).toString()} (${got.ending})`)
  assert.equal(got.received.subarray(0, newline).toString(), sha256(sent), 'the internal upstream got the client\'s 1 MiB intact')
  assert.equal(sha256(got.received.subarray(newline + 1)), sha256(hasherAnswer), 'the client got the internal upstream\'s 1 MiB intact')
}

/** The relay's list of internal endpoints has reached the forwarding agent: a probe gets the hasher's answer. */
async function untilReachable(port: number): Promise<void> {
  await waitFor(async () => (await exchange(port, 'ping')).received.subarray(0, 64).toString() === sha256(Buffer.from('ping')), 10_000, 'the internal endpoint to be reachable')
}

function logsOf(a: Agent): Array<{ msg: string; fields: Record<string, unknown> }> {
  const seen: Array<{ msg: string; fields: Record<string, unknown> }> = []
  a.events.on('log', (e: { msg: string; fields: Record<string, unknown> }) => seen.push(e))
  return seen
}

describe('forward-internal in on_tcp_connect', () => {
  it('same agent: restrict-ips then forward-internal to tcp://camera.internal:22, 1 MiB each way hashed; the own upstream untouched', async () => {
    const a = await agent(TOKEN_1, [
      { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([{ actions: [{ type: 'restrict-ips', config: { allow: ['127.0.0.0/8'] } }] }, forwardTo('tcp://camera.internal:22')]) },
      { name: 'camera', proto: 'tcp', upstream: String(hasher.port), internalHost: 'tcp://camera.internal:22' },
    ])
    const port = portOf(a.tunnels[0]!.publicUrl)
    const ownBefore = own.accepted.length
    await checkMiB(port)
    assert.equal(own.accepted.length, ownBefore, 'the public endpoint\'s own upstream was not dialled')
    // The internal endpoint is listed with its URL, after the public one.
    assert.deepEqual(a.status().internal?.map((t) => t.publicUrl), ['tcp://camera.internal:22'])
  })

  it('restrict-ips before it refuses: the connection is reset and the internal upstream never dialled', async () => {
    const a = await agent(TOKEN_1, [
      { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([{ actions: [{ type: 'restrict-ips', config: { deny: ['127.0.0.0/8'] } }] }, forwardTo('tcp://camera2.internal:22')]) },
      { name: 'camera2', proto: 'tcp', upstream: String(hasher.port), internalHost: 'tcp://camera2.internal:22' },
    ])
    const before = hasher.accepted.length
    const got = await exchange(portOf(a.tunnels[0]!.publicUrl), 'x', { keepOpen: true })
    assert.equal(got.ending, 'ECONNRESET')
    assert.equal(got.received.length, 0)
    assert.equal(hasher.accepted.length, before)
  })

  it('another agent of the token through the relay, its own on_tcp_connect running; another token is refused', async () => {
    // Agent B serves two internal endpoints only: one open, one whose policy denies loopback clients.
    const b = await agent(TOKEN_1, [
      { name: 'dev', proto: 'tcp', upstream: String(hasher.port), internalHost: 'tcp://device1.internal:22', policy: tcpPolicy([{ actions: [{ type: 'log', config: { metadata: { via: 'b' } } }] }]) },
      { name: 'guarded', proto: 'tcp', upstream: String(hasher.port), internalHost: 'tcp://guarded.internal:22', policy: tcpPolicy([{ actions: [{ type: 'restrict-ips', config: { deny: ['127.0.0.0/8'] } }] }]) },
    ])
    const bLogs = logsOf(b)
    assert.equal(b.tunnels.length, 0, 'an agent of internal endpoints only asks the relay for no public name')
    const a = await agent(TOKEN_1, [
      { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([forwardTo('tcp://device1.internal:22')]) },
      { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([forwardTo('tcp://guarded.internal:22')]) },
    ])
    const port = portOf(a.tunnels[0]!.publicUrl)
    await untilReachable(port)
    const ownBefore = own.accepted.length
    await checkMiB(port)
    assert.equal(own.accepted.length, ownBefore)
    // B's own policy ran on the connection (its log action), and it saw the original client.
    await waitFor(() => bLogs.some((l) => l.fields.endpoint === 'dev' && String(l.fields.client).startsWith('127.0.0.1:')), 5_000, 'agent B to log the connection')
    const before = hasher.accepted.length
    const guarded = await exchange(portOf(a.tunnels[1]!.publicUrl), 'x', { keepOpen: true })
    assert.equal(guarded.ending, 'ECONNRESET', 'the internal endpoint\'s restrict-ips closed it')
    assert.equal(hasher.accepted.length, before)
    await waitFor(() => bLogs.some((l) => l.msg === 'connection closed by the traffic policy' && l.fields.endpoint === 'guarded'), 5_000, 'agent B to log the refusal')

    // The same URL from an agent of another authtoken: not reachable, closed, logged, and on_error: continue falls back to its own upstream.
    const c = await agent(TOKEN_2, [
      { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([forwardTo('tcp://device1.internal:22')]) },
      { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([forwardTo('tcp://device1.internal:22', { on_error: 'continue' })]) },
    ])
    const cLogs = logsOf(c)
    const refused = await exchange(portOf(c.tunnels[0]!.publicUrl), 'x', { keepOpen: true })
    assert.equal(refused.ending, 'ECONNRESET')
    assert.equal(hasher.accepted.length, before, 'another token never reaches agent B')
    await waitFor(() => cLogs.some((l) => l.fields.code === 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND'), 5_000, 'the refusal to be logged')
    const fallback = await exchange(portOf(c.tunnels[1]!.publicUrl), 'x')
    assert.equal(fallback.received.toString(), 'own upstream\n')

    // B goes: A's forward closes the connection instead of hanging.
    await b.close()
    await waitFor(async () => (await exchange(port, 'x', { keepOpen: true })).ending === 'ECONNRESET', 10_000, 'the connection to be closed once B left')
  })

  it('tls://db.internal (port 443): a TLS handshake and bytes pass through untouched to the internal endpoint\'s TLS upstream', async () => {
    const dir = tempDir('gw-tcp-internal-tls-')
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=db.internal', '-addext', 'subjectAltName=DNS:db.internal'], { stdio: 'ignore' })
    const cert = readFileSync(join(dir, 'cert.pem'))
    const server: TlsServer = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (socket) => {
      socket.once('data', (d: Buffer) => socket.end(`tls upstream got ${d.toString()}`))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())))
    const b = await agent(TOKEN_1, [{ name: 'db', proto: 'tls', upstream: String((server.address() as AddressInfo).port), internalHost: 'tls://db.internal:443' }])
    void b
    const a = await agent(TOKEN_1, [{ proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([forwardTo('tls://db.internal')]) }])
    const port = portOf(a.tunnels[0]!.publicUrl)
    const talk = (): Promise<string> => new Promise((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: 'db.internal', ca: cert }, () => s.write('hello'))
      let text = ''
      s.on('data', (d: Buffer) => { text += d.toString() })
      s.on('error', () => resolve(`error: ${text}`))
      s.on('close', () => resolve(text))
    })
    await waitFor(async () => (await talk()) === 'tls upstream got hello', 10_000, 'the TLS upstream to answer through the tls internal endpoint')
  })

  it('the real gw binary: gw start (a config file with the public endpoint and tcp://cam.internal:22) and gw tcp --url tcp://far.internal:22', async () => {
    const dir = tempDir('gw-tcp-internal-cli-')
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const common = ['--relay', relay.httpUrl!, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0']
    // Another process, another agent: an internal endpoint only.
    const far = spawnGw(['tcp', String(hasher.port), '--url', 'tcp://far.internal:22', ...common, '--config', join(dir, 'far.yml')], { GW_AUTHTOKEN: TOKEN_1 })
    cleanups.push(async () => {
      far.kill()
      await far.exited
    })
    await far.waitForLine((l) => l.includes('"started tunnel"') && l.includes('tcp://far.internal:22'))
    const file = join(dir, 'gw.yml')
    writeFileSync(file, [
      'version: 3',
      'endpoints:',
      '  - name: edge',
      '    url: "tcp://"',
      `    upstream: {url: ${own.port}}`,
      '    traffic_policy:',
      '      on_tcp_connect:',
      '        - actions: [{type: restrict-ips, config: {allow: [127.0.0.0/8]}}]',
      '        - actions: [{type: forward-internal, config: {url: "tcp://cam.internal:22"}}]',
      '  - name: remote',
      '    url: "tcp://"',
      `    upstream: {url: ${own.port}}`,
      '    traffic_policy: {on_tcp_connect: [{actions: [{type: forward-internal, config: {url: "tcp://far.internal:22"}}]}]}',
      '  - name: cam',
      '    url: tcp://cam.internal:22',
      `    upstream: {url: ${hasher.port}}`,
      '',
    ].join('\n'))
    const gw = spawnGw(['start', '--all', '--config', file, ...common], { GW_AUTHTOKEN: TOKEN_1 })
    cleanups.push(async () => {
      gw.kill()
      await gw.exited
    })
    const urls = new Map<string, string>()
    await waitFor(() => {
      for (const l of gw.lines.filter((x) => x.includes('"started tunnel"'))) {
        const j = JSON.parse(l) as { name: string; url: string }
        urls.set(j.name, j.url)
      }
      return urls.size >= 3
    }, 15_000, 'gw start to start its three endpoints')
    assert.equal(urls.get('cam'), 'tcp://cam.internal:22')
    await checkMiB(portOf(urls.get('edge')!))
    const remote = portOf(urls.get('remote')!)
    await untilReachable(remote)
    await checkMiB(remote)

    // The agent API lists the internal endpoint after the public ones, as tcp, and starts another by POST.
    const api = JSON.parse(await gw.waitForLine((l) => l.includes('"agent API"'))) as { url: string }
    const tunnels = await (await fetch(`${api.url}/api/tunnels`)).json() as { tunnels: Array<{ name: string; public_url: string; proto: string }> }
    assert.deepEqual(tunnels.tunnels.map((t) => t.public_url).slice(-1), ['tcp://cam.internal:22'])
    assert.equal(tunnels.tunnels.at(-1)!.proto, 'tcp')
    const posted = await fetch(`${api.url}/api/endpoints`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'posted', url: 'tcp://posted.internal:23', upstream: { url: String(hasher.port) } }) })
    assert.equal(posted.status, 201, await posted.clone().text())
    // A public endpoint of another agent of the token reaches it through the relay.
    const a = await agent(TOKEN_1, [{ proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([forwardTo('tcp://posted.internal:23')]) }])
    await untilReachable(portOf(a.tunnels[0]!.publicUrl))
  })

  it('refuses what it cannot serve, with the reason', async () => {
    assert.throws(() => tcpPolicy([forwardTo('https://api.internal')]), /in on_tcp_connect must be the URL of a tcp or tls internal endpoint, such as tcp:\/\/camera\.internal:22/)
    assert.throws(() => tcpPolicy([forwardTo('tcp://camera.internal')]), /tcp or tls internal endpoint/, 'a tcp URL needs its port')
    assert.throws(() => compilePolicy({ on_http_request: [forwardTo('tcp://camera.internal:22')] }), /must be the URL of an internal endpoint, such as https:\/\/api\.internal/)
    const run = (args: string[]) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawnGw(args, { GW_CONFIG: join(stateDir, 'none.yml') })
      void p.exited.then((code) => resolve({ code, stderr: p.stderr() }))
    })
    const noPort = await run(['tcp', '22', '--url', 'tcp://camera.internal'])
    assert.equal(noPort.code, 2)
    assert.match(noPort.stderr, /a tcp internal endpoint's URL is tcp:\/\/<name>\.internal:<port>/)
    // Config-file URLs: tls takes 443 when the port is left out; a tcp one needs its port; bindings follow the URL.
    assert.equal(endpointSpec({ name: 'e', url: 'tls://db.internal', upstream: { url: '5432' } }, 'gw.yml: endpoint "db":').internalHost, 'tls://db.internal:443')
    assert.equal(endpointSpec({ name: 'e', url: 'tcp://Camera.Internal:22', upstream: { url: '22' }, bindings: ['internal'] }, 'e:').internalHost, 'tcp://camera.internal:22')
    assert.throws(() => endpointSpec({ name: 'e', url: 'tcp://camera.internal', upstream: { url: '22' } }, 'e:'), /a tcp internal endpoint's URL is tcp:\/\/<name>\.internal:<port>/)
    assert.throws(() => endpointSpec({ name: 'e', url: 'tcp://', upstream: { url: '22' }, bindings: ['internal'] }, 'e:'), /bindings \[internal\] needs url: tcp:\/\/<name>\.internal:<port>/)
    assert.throws(() => endpointSpec({ name: 'e', url: 'tcp://camera.internal:22', upstream: { url: '22' }, bindings: ['public'] }, 'e:'), /a \*\.internal URL is an internal endpoint; drop bindings: \[public\]/)
    const tlsInternal = await run(['tls', '443', '--url', 'tls://db.internal', '--pooling-enabled'])
    assert.equal(tlsInternal.code, 2)
    assert.match(tlsInternal.stderr, /is an internal endpoint, which is not on the relay's public side; drop --pooling-enabled/)
    const pooled = await run(['tcp', '22', '--url', 'tcp://camera.internal:22', '--pooling-enabled'])
    assert.equal(pooled.code, 2)
    assert.match(pooled.stderr, /is an internal endpoint, which is not on the relay's public side; drop --pooling-enabled/)
  })
})

describe('tcp echo sanity', () => {
  it('an echo upstream behind an internal endpoint answers line by line', async () => {
    const e = await startTcpServer(echo)
    cleanups.push(() => e.close())
    const a = await agent(TOKEN_1, [
      { proto: 'tcp', upstream: String(own.port), policy: tcpPolicy([forwardTo('tcp://echo.internal:7')]) },
      { name: 'echo', proto: 'tcp', upstream: String(e.port), internalHost: 'tcp://echo.internal:7' },
    ])
    assert.equal((await exchange(portOf(a.tunnels[0]!.publicUrl), 'echo me')).received.toString(), 'echo me')
  })
})
