/**
 * terminate-tls in on_tcp_connect: the agent ends the client's TLS with the action's
 * certificate and passes plaintext to the upstream. A per-run CA made with openssl signs
 * the server's certificate and the clients' ones (and a second CA signs a stranger's); real
 * Node TLS clients connect to a tcp endpoint and to a gw tls endpoint (the relay hands the
 * TLS through by SNI) on a real relay. Checked: the handshake with the configured
 * certificate and plaintext at the upstream (1 MiB hashed each way); min_version 1.3
 * refusing a TLS 1.2-only client; mutual TLS requiring a client certificate from the given
 * CA (none, and one from another CA, refused; the right one served); require-any and
 * request; terminate-tls then forward-internal to a tcp internal endpoint; load errors.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent, type AgentEndpointOptions } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import { tempDir, waitFor } from '../helpers/stack.js'
import { portOf, sha256, startTcpServer, type TcpServer } from '../helpers/tcp.js'

const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p))
const TOKEN = 'terminate-tls-token-0123456789'

interface Pki { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; strangerCert: string; strangerKey: string }

/** A CA, a server certificate for localhost/127.0.0.1/secure.localhost and a client certificate signed by it; a stranger from a second CA. */
function makePki(dir: string): Pki {
  const ssl = (...args: string[]) => execFileSync(OPENSSL!, args, { cwd: dir, stdio: 'ignore' })
  const ca = (name: string) => ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  const leaf = (name: string, by: string, ext: string) => {
    ssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    writeFileSync(join(dir, `${name}.ext`), ext)
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.pem`, '-CAkey', `${by}.key`, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.pem`)
  }
  ca('ca')
  ca('other-ca')
  leaf('server', 'ca', 'subjectAltName=DNS:localhost,DNS:secure.localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n')
  leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n')
  const read = (f: string) => readFileSync(join(dir, f), 'utf8')
  return { ca: read('ca.pem'), serverCert: read('server.pem'), serverKey: read('server.key'), clientCert: read('client.pem'), clientKey: read('client.key'), strangerCert: read('stranger.pem'), strangerKey: read('stranger.key') }
}

describe('terminate-tls', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  let dir: string
  let relay: Relay
  let pki: Pki
  /** Plaintext upstream: reads until FIN, answers the hash of what it got, a newline, then 1 MiB. */
  let hasher: TcpServer
  let answer: Buffer
  const cleanups: Array<() => Promise<unknown> | unknown> = []
  const logs: Array<{ msg: string; fields: Record<string, unknown> }> = []
  before(async () => {
    dir = tempDir('gw-terminate-tls-')
    pki = makePki(dir)
    relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir: join(dir, 'relay'), tcpPorts: 'any', authtokens: [TOKEN] })
    answer = randomBytes(1024 * 1024)
    hasher = await startTcpServer((socket) => {
      const chunks: Buffer[] = []
      socket.on('data', (d: Buffer) => chunks.push(d))
      socket.on('end', () => socket.end(Buffer.concat([Buffer.from(`${sha256(Buffer.concat(chunks))}\n`), answer])))
    })
  })
  after(async () => {
    for (const c of cleanups.reverse()) await c()
    await relay.close()
    await hasher.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const terminate = (extra: Record<string, unknown> = {}) => ({ actions: [{ type: 'terminate-tls', config: { server_certificate: pki.serverCert, server_private_key: pki.serverKey, ...extra } }] })

  async function agent(endpoints: AgentEndpointOptions[]): Promise<Agent> {
    const a = await startAgent({ relay: relay.httpUrl!, authtoken: TOKEN, endpoints })
    a.events.on('log', (e: { msg: string; fields: Record<string, unknown> }) => logs.push(e))
    cleanups.push(() => a.close())
    return a
  }

  async function tcpEndpoint(rules: unknown[], extra: AgentEndpointOptions[] = []): Promise<number> {
    const a = await agent([{ proto: 'tcp', upstream: String(hasher.port), policy: compilePolicy({ on_tcp_connect: rules }, { kind: 'tcp' }) }, ...extra])
    return portOf(a.tunnels[0]!.publicUrl)
  }

  /** A TLS client: sends `send`, half-closes, collects the answer; `error` is the handshake's or the connection's. */
  function talk(port: number, options: ConnectionOptions, send: Buffer): Promise<{ received: Buffer; error?: string; protocol?: string | null; fingerprint?: string }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = []
      let error: string | undefined
      let protocol: string | null | undefined
      let fingerprint: string | undefined
      // allowHalfOpen is a net option tls.connect passes on (its type leaves it out).
      const s = tlsConnect({ host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost', allowHalfOpen: true, ...options } as ConnectionOptions, () => {
        protocol = s.getProtocol()
        fingerprint = s.getPeerCertificate().fingerprint256
        s.end(send)
      })
      s.on('data', (d: Buffer) => chunks.push(d))
      s.on('error', (err: NodeJS.ErrnoException) => { error ??= err.code ?? err.message })
      s.on('close', () => resolve({ received: Buffer.concat(chunks), error, protocol, fingerprint }))
    })
  }

  function checkHashed(sent: Buffer, got: { received: Buffer; error?: string }): void {
    const nl = got.received.indexOf(10)
    assert.ok(nl > 0, `no answer: ${got.error}`)
    assert.equal(got.received.subarray(0, nl).toString(), sha256(sent), 'the upstream got the plaintext intact')
    assert.equal(sha256(got.received.subarray(nl + 1)), sha256(answer), 'the client got the upstream\'s 1 MiB intact')
  }

  it('a tcp endpoint: the handshake uses the configured certificate, and the upstream gets plaintext (1 MiB hashed both ways)', async () => {
    const port = await tcpEndpoint([terminate()])
    const sent = randomBytes(1024 * 1024)
    const got = await talk(port, {}, sent)
    assert.equal(got.error, undefined)
    assert.equal(got.fingerprint, new (await import('node:crypto')).X509Certificate(pki.serverCert).fingerprint256)
    assert.equal(got.protocol, 'TLSv1.3', 'max_version defaults to 1.3')
    checkHashed(sent, got)
    // A 1.2-only client is welcome by default (min_version 1.2).
    const tls12 = await talk(port, { maxVersion: 'TLSv1.2' }, Buffer.from('x'))
    assert.equal(tls12.protocol, 'TLSv1.2')
    assert.equal(tls12.received.subarray(0, 64).toString(), sha256(Buffer.from('x')))
  })

  it('min_version 1.3 (ngrok\'s example): a TLS 1.2-only client fails the handshake and the upstream is never dialled', async () => {
    const port = await tcpEndpoint([terminate({ min_version: '1.3', max_version: '1.3' })])
    const before = hasher.accepted.length
    const old = await talk(port, { maxVersion: 'TLSv1.2' }, Buffer.from('x'))
    assert.ok(old.error, 'the TLS 1.2 client was refused')
    assert.match(old.error!, /ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION|ECONNRESET|protocol version/i)
    assert.equal(hasher.accepted.length, before)
    await waitFor(() => logs.some((l) => l.fields.code === 'GW_ERR_POLICY_TLS_HANDSHAKE' && l.msg.startsWith('terminate-tls: the TLS handshake failed')), 5_000, 'the refusal to be logged with its code')
    const ok = await talk(port, {}, Buffer.from('y'))
    assert.equal(ok.protocol, 'TLSv1.3')
    assert.equal(ok.received.subarray(0, 64).toString(), sha256(Buffer.from('y')))
  })

  it('mutual TLS (require-and-verify): no certificate and a stranger\'s are refused, the CA\'s client is served', async () => {
    const port = await tcpEndpoint([terminate({ mutual_tls_certificate_authorities: [pki.ca] })])
    const before = hasher.accepted.length
    const none = await talk(port, {}, Buffer.from('x'))
    assert.ok(none.error, 'a client without a certificate is refused')
    assert.equal(none.received.length, 0)
    // In TLS 1.3 the client finishes its side before the server checks its certificate: it sees the alert or the close, and no answer.
    const stranger = await talk(port, { cert: pki.strangerCert, key: pki.strangerKey }, Buffer.from('x'))
    assert.equal(stranger.received.length, 0, 'a certificate from another CA is refused')
    assert.equal(hasher.accepted.length, before, 'the upstream never saw the refused clients')
    const sent = randomBytes(64 * 1024)
    const ok = await talk(port, { cert: pki.clientCert, key: pki.clientKey }, sent)
    assert.equal(ok.error, undefined)
    assert.equal(ok.received.subarray(0, 64).toString(), sha256(sent))
  })

  it('require-any takes any client certificate but none is refused; request serves a client without one', async () => {
    const any = await tcpEndpoint([terminate({ mutual_tls_certificate_authorities: [pki.ca], mutual_tls_verification_strategy: 'require-any' })])
    assert.equal((await talk(any, { cert: pki.strangerCert, key: pki.strangerKey }, Buffer.from('s'))).received.subarray(0, 64).toString(), sha256(Buffer.from('s')))
    assert.equal((await talk(any, {}, Buffer.from('s'))).received.length, 0)
    const request = await tcpEndpoint([terminate({ mutual_tls_certificate_authorities: [pki.ca], mutual_tls_verification_strategy: 'request' })])
    assert.equal((await talk(request, {}, Buffer.from('r'))).received.subarray(0, 64).toString(), sha256(Buffer.from('r')))
    assert.equal((await talk(request, { cert: pki.strangerCert, key: pki.strangerKey }, Buffer.from('r'))).received.length, 0, 'a certificate that is given must verify')
  })

  it('a gw tls endpoint (the relay passes TLS through by SNI): the agent terminates, with restrict-ips before it', async () => {
    const policy = compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'restrict-ips', config: { allow: ['127.0.0.0/8'] } }] }, terminate({ min_version: '1.3' })] }, { kind: 'tls' })
    await agent([{ proto: 'tls', publicName: 'secure', upstream: String(hasher.port), policy }])
    const httpsPort = Number(new URL(relay.httpsUrl!).port)
    const sent = randomBytes(1024 * 1024)
    let got!: Awaited<ReturnType<typeof talk>>
    await waitFor(async () => {
      got = await talk(httpsPort, { servername: 'secure.localhost' }, sent)
      return got.error === undefined
    }, 10_000, 'the tls endpoint to answer')
    checkHashed(sent, got)
    assert.ok((await talk(httpsPort, { servername: 'secure.localhost', maxVersion: 'TLSv1.2' }, Buffer.from('x'))).error)
  })

  it('terminate-tls then forward-internal: plaintext to a tcp internal endpoint', async () => {
    const port = await tcpEndpoint([terminate(), { actions: [{ type: 'forward-internal', config: { url: 'tcp://plain.internal:9000' } }] }], [
      { name: 'plain', proto: 'tcp', upstream: String(hasher.port), internalHost: 'tcp://plain.internal:9000' },
    ])
    const sent = randomBytes(256 * 1024)
    const got = await talk(port, {}, sent)
    assert.equal(got.received.subarray(0, 64).toString(), sha256(sent))
  })

  it('refuses at load what it cannot do, with the reason', () => {
    const load = (config: Record<string, unknown>) => () => compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config }] }] }, { kind: 'tcp' })
    assert.throws(load({ min_version: '1.3' }), /terminate-tls needs server_certificate and server_private_key \(PEM\) in gw: ngrok uses the certificate it manages/)
    assert.throws(load({ server_certificate: pki.serverCert }), /server_private_key: terminate-tls needs server_private_key/)
    assert.throws(load({ server_certificate: pki.serverCert, server_private_key: pki.clientKey }), /server_private_key: does not match server_certificate/)
    assert.throws(load({ server_certificate: pki.serverCert, server_private_key: pki.serverKey, mutual_tls_certificate_authorities: ['ca_2abc'] }), /is a certificate authority kept in ngrok's cloud/)
    assert.throws(load({ server_certificate: pki.serverCert, server_private_key: pki.serverKey, mutual_tls_certificate_authorities: [pki.clientCert] }), /is not a CA certificate/)
    assert.throws(load({ server_certificate: pki.serverCert, server_private_key: pki.serverKey, min_version: '1.3', max_version: '1.2' }), /max_version: must not be below min_version/)
    assert.throws(load({ server_certificate: pki.serverCert, server_private_key: pki.serverKey, min_version: '1.1' }), /min_version/)
    assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'terminate-tls', config: {} }] }] }), /terminate-tls cannot run in on_http_request/)
  })
})
