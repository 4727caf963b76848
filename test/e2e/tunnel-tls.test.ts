/**
 * tls endpoints end to end: the relay routes a TLS connection by its SNI to the agent
 * holding the name without decrypting it; the upstream's own certificate answers the
 * handshake, and clients verify that certificate (Node's TLS client, and curl when it is
 * installed). The relay's own HTTPS for http endpoints is unchanged beside it.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { X509Certificate, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { startUpstream, tempDir, waitFor } from '../helpers/stack.js'
import { sha256 } from '../helpers/tcp.js'

const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p))

/** A self-signed certificate for `host`, made with openssl: the upstream's own, which the relay never sees. */
function selfSigned(dir: string, host: string): { cert: string; key: string } {
  execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-keyout', join(dir, `${host}.key`), '-out', join(dir, `${host}.pem`), '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`], { stdio: 'ignore' })
  return { cert: readFileSync(join(dir, `${host}.pem`), 'utf8'), key: readFileSync(join(dir, `${host}.key`), 'utf8') }
}

function get(port: number, servername: string, ca: string): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername, ca, path: '/hello', headers: { host: servername }, agent: false }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('tls endpoints', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  let dir: string
  let relay: Relay
  let cert: { cert: string; key: string }
  const cleanups: Array<() => Promise<void> | void> = []
  before(async () => {
    dir = tempDir()
    cert = selfSigned(dir, 'secure.localhost')
    relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir: join(dir, 'relay'), authtokens: ['tok-a', 'tok-b'] })
  })
  after(async () => {
    for (const c of cleanups.reverse()) await c()
    await relay.close()
    rmSync(dir, { recursive: true, force: true })
  })

  async function tlsAgent(upstreamPort: number, name: string, authtoken = 'tok-a', policy?: unknown): Promise<Agent> {
    let compiled
    if (policy) {
      const { compileEndpointPolicy } = await import('@gw/cli/endpoint-policy')
      const { AgentEvents } = await import('@gw/cli/agent/events')
      compiled = compileEndpointPolicy({ inline: policy, kind: 'tls', events: new AgentEvents(), endpoint: name })
    }
    const agent = await startAgent({ relay: relay.httpUrl!, authtoken, endpoints: [{ proto: 'tls', publicName: name, upstream: `127.0.0.1:${upstreamPort}`, ...(compiled ? { policy: compiled } : {}) }] })
    cleanups.push(() => agent.close())
    return agent
  }

  it('routes by SNI without terminating: the client verifies the upstream\'s own certificate', async () => {
    const upstream = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => res.end(`hello from the upstream over ${(req.socket as TLSSocket).getProtocol()}`))
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => { upstream.closeAllConnections(); upstream.close(() => resolve()) }))
    const agent = await tlsAgent((upstream.address() as AddressInfo).port, 'secure')
    assert.deepEqual(agent.tunnels[0]!.publicUrls, [`tls://secure.localhost:${relay.httpsPort}`])

    const res = await get(relay.httpsPort!, 'secure.localhost', cert.cert)
    assert.equal(res.status, 200)
    assert.match(res.body, /^hello from the upstream over TLSv1\.[23]$/)
    assert.equal(res.fingerprint, new X509Certificate(cert.cert).fingerprint256, 'the certificate is the upstream\'s')
    // Trusting only the relay's CA, the same handshake fails: the relay never presented its own.
    await assert.rejects(get(relay.httpsPort!, 'secure.localhost', relay.caCertPem!), /self-signed|unable to verify|certificate/i)

    // curl, verifying the upstream's certificate by name.
    const curl = ['/usr/bin/curl', '/usr/local/bin/curl'].find((p) => existsSync(p))
    if (curl) {
      // Asynchronously: the relay and the agent run in this process.
      const r = await promisify(execFile)(curl, ['-sS', '--cacert', join(dir, 'secure.localhost.pem'), '--resolve', `secure.localhost:${relay.httpsPort}:127.0.0.1`,
        `https://secure.localhost:${relay.httpsPort}/hello`], { encoding: 'utf8', timeout: 20_000 })
      assert.match(r.stdout, /^hello from the upstream over TLSv1\.[23]$/)
    }
  })

  it('1 MiB each way through TLS, with half-close; http endpoints on the same port are still the relay\'s', async () => {
    const raw = createTlsServer({ cert: cert.cert, key: cert.key, allowHalfOpen: true }, (socket) => {
      const chunks: Buffer[] = []
      socket.on('data', (d: Buffer) => chunks.push(d))
      socket.on('end', () => socket.end(Buffer.concat([Buffer.from(`${sha256(Buffer.concat(chunks))}\n`), answer])))
      socket.on('error', () => {})
    })
    const answer = randomBytes(1024 * 1024)
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => raw.close(() => resolve())))
    await tlsAgent((raw.address() as AddressInfo).port, 'bulk')
    const sent = randomBytes(1024 * 1024)
    const got = await new Promise<Buffer>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort!, servername: 'bulk.localhost', ca: cert.cert, checkServerIdentity: () => undefined })
      const chunks: Buffer[] = []
      socket.on('data', (d: Buffer) => chunks.push(d))
      socket.on('end', () => {
        socket.end()
        resolve(Buffer.concat(chunks))
      })
      socket.on('error', reject)
      socket.once('secureConnect', () => {
        assert.equal(socket.getPeerCertificate().fingerprint256, new X509Certificate(cert.cert).fingerprint256)
        socket.end(sent)
      })
    })
    const nl = got.indexOf(10)
    assert.equal(got.subarray(0, nl).toString(), sha256(sent))
    assert.equal(sha256(got.subarray(nl + 1)), sha256(answer))

    // An http endpoint on the same relay: the relay terminates its TLS with its own certificate.
    const web = await startUpstream((_req, res) => res.end('plain http upstream'))
    cleanups.push(() => web.close())
    const http = await startAgent({ relay: relay.httpUrl!, authtoken: 'tok-a', endpoints: [{ publicName: 'web', upstream: web.url }] })
    cleanups.push(() => http.close())
    const res = await get(relay.httpsPort!, 'web.localhost', relay.caCertPem!)
    assert.equal(res.body, 'plain http upstream')
    await waitFor(() => relay.openStreams() === 0, 5000, 'streams back to 0')
  })

  it('a name is its token\'s across http and tls; no HTTPS port, no tls endpoints', async () => {
    const upstream = await startUpstream((_req, res) => res.end('x'))
    cleanups.push(() => upstream.close())
    await tlsAgent(upstream.port, 'owned', 'tok-a')
    await assert.rejects(startAgent({ relay: relay.httpUrl!, authtoken: 'tok-b', endpoints: [{ proto: 'tls', publicName: 'owned', upstream: String(upstream.port) }] }), { code: 'GW_ERR_NAME_TAKEN' })
    await assert.rejects(startAgent({ relay: relay.httpUrl!, authtoken: 'tok-b', endpoints: [{ publicName: 'owned', upstream: upstream.url }] }), { code: 'GW_ERR_NAME_TAKEN' })
    const plain = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: join(dir, 'plain') })
    cleanups.push(() => plain.close())
    await assert.rejects(startAgent({ relay: plain.httpUrl!, endpoints: [{ proto: 'tls', upstream: String(upstream.port) }] }), { code: 'GW_ERR_TLS_DISABLED' })
  })

  it('on_tcp_connect applies to tls endpoints: restrict-ips closes a client before the handshake reaches the upstream', async () => {
    let handshakes = 0
    const upstream = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => s.end('hi'))
    upstream.on('secureConnection', () => handshakes++)
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => upstream.close(() => resolve())))
    await tlsAgent((upstream.address() as AddressInfo).port, 'guarded', 'tok-a', { on_tcp_connect: [{ actions: [{ type: 'restrict-ips', config: { deny: ['127.0.0.0/8'] } }] }] })
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort!, servername: 'guarded.localhost', ca: cert.cert, checkServerIdentity: () => undefined })
      socket.once('secureConnect', () => resolve('connected'))
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    })
    assert.equal(outcome, 'ECONNRESET')
    assert.equal(handshakes, 0)
  })
})
