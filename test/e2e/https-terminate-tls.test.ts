/**
 * terminate-tls on an https endpoint: the relay ends the endpoint's TLS and runs the
 * action (mutual TLS, versions) for that name only. A CA made per run with openssl signs a
 * client certificate (with a full subject and SANs); a second CA signs a stranger's. A real
 * relay (domain localhost, so each name gets its own certificate through SNI) serves a real
 * agent with two http endpoints: `secure` (terminate-tls with the CA, conn.tls.client.*
 * written into request headers by add-headers) and `open` (no policy). Checked with undici
 * and curl (--cert/--key) and openssl s_client:
 * - a valid certificate: 200, and the upstream sees ngrok's conn.tls.client.* values;
 * - no certificate, and one from the other CA: the handshake fails, the upstream sees nothing;
 * - the other name on the same port sends no CertificateRequest (openssl prints "No client
 *   certificate CA names sent"), the secure one names the CA;
 * - plain HTTP and a request for `secure` on `open`'s TLS connection: 421 GW_ERR_MISDIRECTED_REQUEST;
 * - min_version 1.3: a TLS 1.2 client fails the handshake on that name only;
 * - HTTP/2 with a certificate served; an HTTP/2 connection made for another name: 421;
 * - require-any and request; the real gw http with --traffic-policy-file and curl;
 * - a connection made before the agent asked: 421; CA names only while the agent holds the
 *   name; pooled agents must agree; a relay without HTTPS refuses;
 * - an older relay (no terminateTls in its welcome): the agent refuses to start, GW_ERR_RELAY_NO_TERMINATE_TLS;
 * - heads without the terminate-tls digest (a cluster peer, a faulty relay): the agent itself answers 421.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { connect as h2Connect, type ClientHttp2Session } from 'node:http2'
import { Agent as UndiciAgent, request } from 'undici'
import { WebSocketServer } from 'ws'
import { startRelay, type Relay } from '@gw/relay'
import { createWebSocketTransport, MessageReader, MessageType, MessageWriter, PROTOCOL_VERSION, Session, checkHello, checkResponseHead, decodeJson, ErrorCodes, terminateTlsDigest, type RequestHead, type TerminateTlsRequest } from '@gw/protocol'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import { spawnGw, startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'
import { fixture } from '../policy/ngrok-docs.js'

const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p))
const CURL = ['/usr/bin/curl', '/usr/local/bin/curl'].find((p) => existsSync(p))
const TOKEN = 'https-terminate-tls-token-0123456789'

interface Pki { ca: string; client: string; clientKey: string; stranger: string; strangerKey: string; serviceB: string; serviceBKey: string; dir: string }

function makePki(dir: string): Pki {
  const ssl = (...args: string[]) => execFileSync(OPENSSL!, args, { cwd: dir, stdio: 'ignore' })
  const ca = (name: string, subject: string) => ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  const leaf = (name: string, by: string, subject: string, ext: string) => {
    ssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject)
    writeFileSync(join(dir, `${name}.ext`), ext)
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.pem`, '-CAkey', `${by}.key`, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.pem`)
  }
  ca('ca', '/C=US/O=Example CA/CN=exampleca.test')
  ca('other-ca', '/CN=other-ca')
  leaf('client', 'ca', '/C=US/ST=California/L=Mountain View/O=Acme, Inc./OU=Devices/CN=service-a',
    'extendedKeyUsage=clientAuth\nsubjectAltName=DNS:service-a.example,IP:10.1.2.3,email:ops@example.com,URI:spiffe://example/service-a\n')
  leaf('stranger', 'other-ca', '/CN=stranger', 'extendedKeyUsage=clientAuth\n')
  leaf('service-b', 'ca', '/CN=service-b', 'extendedKeyUsage=clientAuth\n')
  const read = (f: string) => readFileSync(join(dir, f), 'utf8')
  return { ca: read('ca.pem'), client: read('client.pem'), clientKey: read('client.key'), stranger: read('stranger.pem'), strangerKey: read('stranger.key'), serviceB: read('service-b.pem'), serviceBKey: read('service-b.key'), dir }
}

function run(file: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr })
    })
    child.stdin?.end(input ?? '')
  })
}

describe('terminate-tls on an https endpoint (mutual TLS at the relay)', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  let dir: string
  let pki: Pki
  let relay: Relay
  let upstream: Upstream
  let agent: Agent
  let port: number
  let caFile: string
  const seen: IncomingHttpHeaders[] = []

  before(async () => {
    dir = tempDir('gw-https-mtls-')
    pki = makePki(dir)
    upstream = await startUpstream((req, res) => {
      seen.push(req.headers)
      res.end(`hello ${req.headers.host}`)
    })
    relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir: join(dir, 'relay'), authtokens: [TOKEN] })
    port = relay.httpsPort!
    caFile = join(dir, 'relay-ca.pem')
    writeFileSync(caFile, relay.caCertPem!)
    const policy = compilePolicy({
      on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { mutual_tls_certificate_authorities: [pki.ca] } }] }],
      on_http_request: [{
        actions: [{
          type: 'add-headers',
          config: {
            headers: {
              'x-subject': '${conn.tls.client.subject}',
              'x-cn': '${conn.tls.client.subject.common_name}',
              'x-org': "${conn.tls.client.subject.organization.join(';')}",
              'x-issuer': '${conn.tls.client.issuer}',
              'x-issuer-cn': '${conn.tls.client.issuer.common_name}',
              'x-serial': '${conn.tls.client.serial_number}',
              'x-san': '${conn.tls.client.san}',
              'x-san-dns': "${conn.tls.client.san.dns_names.join(',')}",
              'x-san-ip': "${conn.tls.client.san.ip_addresses.join(',')}",
              'x-san-email': "${conn.tls.client.san.email_addresses.join(',')}",
              'x-san-uri': "${conn.tls.client.san.uris.join(',')}",
              'x-sig': '${conn.tls.client.signature_algorithm}',
              'x-not-after': '${conn.tls.client.validity.not_after}',
              'x-valid-now': "${string(conn.tls.client.validity.not_before <= timestamp(time.now) && timestamp(time.now) < conn.tls.client.validity.not_after)}",
              'x-ext': "${conn.tls.client.extensions.map(e, e.id).join(',')}",
              'x-pem-match': "${string(conn.tls.client.pem.startsWith('-----BEGIN CERTIFICATE-----'))}",
              'x-action-cn': '${actions.ngrok.terminate_tls.client.subject.common_name}',
              'x-tls-version': '${conn.tls.version}',
            },
          },
        }],
      }],
    })
    assert.ok(policy.terminateTls, 'the http policy carries a terminate-tls for the relay')
    agent = await startAgent({
      relay: relay.httpUrl!,
      authtoken: TOKEN,
      endpoints: [
        { name: 'secure', publicName: 'secure', upstream: upstream.url, policy },
        { name: 'open', publicName: 'open', upstream: upstream.url },
      ],
    })
  })
  after(async () => {
    await agent?.close()
    await relay?.close()
    await upstream?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const dispatcher = (name: string, cert?: { cert: string; key: string }) =>
    new UndiciAgent({ connect: { ca: relay.caCertPem!, servername: `${name}.localhost`, ...(cert ?? {}) } })

  async function get(name: string, cert?: { cert: string; key: string }) {
    const d = dispatcher(name, cert)
    try {
      const res = await request(`https://127.0.0.1:${port}/`, { dispatcher: d, headers: { host: `${name}.localhost:${port}` } })
      return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
    } finally {
      await d.close()
    }
  }

  it('the welcome says the relay runs it, and the endpoint is served over HTTPS only', () => {
    const secure = agent.tunnels.find((t) => t.name === 'secure')!
    assert.deepEqual(secure.publicUrls, [`https://secure.localhost:${port}`])
    const open = agent.tunnels.find((t) => t.name === 'open')!
    assert.ok(open.publicUrls.some((u) => u.startsWith('http:')), 'the other endpoint keeps its http URL')
  })

  it('a client certificate from the CA reaches the upstream, with ngrok\'s conn.tls.client.* variables', async () => {
    seen.length = 0
    const res = await get('secure', { cert: pki.client, key: pki.clientKey })
    assert.equal(res.status, 200)
    assert.equal(res.body, `hello secure.localhost:${port}`)
    const h = seen[0]!
    assert.equal(h['x-subject'], 'CN=service-a,OU=Devices,O=Acme\\, Inc.,L=Mountain View,ST=California,C=US')
    assert.equal(h['x-cn'], 'service-a')
    assert.equal(h['x-org'], 'Acme, Inc.')
    assert.equal(h['x-issuer'], 'CN=exampleca.test,O=Example CA,C=US')
    assert.equal(h['x-issuer-cn'], 'exampleca.test')
    const serial = execFileSync(OPENSSL!, ['x509', '-noout', '-serial'], { input: pki.client, encoding: 'utf8' }).trim().replace(/^serial=/, '').toLowerCase().replace(/^0+(?=.)/, '')
    assert.equal(h['x-serial'], serial)
    assert.equal(h['x-san'], 'DNS:service-a.example, IP Address:10.1.2.3, email:ops@example.com, URI:spiffe://example/service-a')
    assert.equal(h['x-san-dns'], 'service-a.example')
    assert.equal(h['x-san-ip'], '10.1.2.3')
    assert.equal(h['x-san-email'], 'ops@example.com')
    assert.equal(h['x-san-uri'], 'spiffe://example/service-a')
    assert.equal(h['x-sig'], 'ECDSA-SHA256')
    const notAfter = execFileSync(OPENSSL!, ['x509', '-noout', '-enddate'], { input: pki.client, encoding: 'utf8' }).trim().replace(/^notAfter=/, '')
    assert.equal(h['x-not-after'], new Date(notAfter).toISOString())
    assert.equal(h['x-valid-now'], 'true')
    assert.ok(String(h['x-ext']).split(',').includes('2.5.29.17'), `extensions: ${h['x-ext']}`)
    assert.ok(String(h['x-ext']).split(',').includes('2.5.29.37'), `extensions: ${h['x-ext']}`)
    assert.equal(h['x-pem-match'], 'true')
    assert.equal(h['x-action-cn'], 'service-a')
    assert.match(String(h['x-tls-version']), /^1\.[23]$/)
  })

  it('no client certificate, or one from another CA: the TLS handshake fails and nothing reaches the upstream', async () => {
    seen.length = 0
    await assert.rejects(get('secure'), (err: Error & { code?: string }) => {
      assert.match(`${err.code} ${err.message} ${(err.cause as Error | undefined)?.message ?? ''}`, /certificate|ECONNRESET|SOCKET|alert|closed/i)
      return true
    })
    await assert.rejects(get('secure', { cert: pki.stranger, key: pki.strangerKey }))
    assert.equal(seen.length, 0)
  })

  it('curl: --cert/--key served, without them refused', { skip: CURL ? false : 'curl is not installed' }, async () => {
    const base = ['-sS', '--cacert', caFile, '--resolve', `secure.localhost:${port}:127.0.0.1`, `https://secure.localhost:${port}/`]
    writeFileSync(join(dir, 'client.crt'), pki.client)
    writeFileSync(join(dir, 'client.key.pem'), pki.clientKey)
    const ok = await run(CURL!, ['--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key.pem'), ...base])
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(ok.stdout, `hello secure.localhost:${port}`)
    // The alert comes after curl's side of the TLS 1.3 handshake; curl reports it, or the close behind it.
    const refused = await run(CURL!, base)
    assert.notEqual(refused.code, 0)
    assert.doesNotMatch(refused.stdout, /hello/)
    writeFileSync(join(dir, 'stranger.crt'), pki.stranger)
    writeFileSync(join(dir, 'stranger.key.pem'), pki.strangerKey)
    const stranger = await run(CURL!, ['--cert', join(dir, 'stranger.crt'), '--key', join(dir, 'stranger.key.pem'), ...base])
    assert.notEqual(stranger.code, 0)
    assert.doesNotMatch(stranger.stdout, /hello/)
  })

  it('only the terminate-tls name sends a CertificateRequest (openssl s_client), naming its CA', async () => {
    const sClient = (name: string) => run(OPENSSL!, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', `${name}.localhost`, '-tls1_2', '-CAfile', caFile], 'Q\n')
    const open = await sClient('open')
    assert.match(open.stdout, /No client certificate CA names sent/)
    assert.doesNotMatch(open.stdout, /Acceptable client certificate CA names/)
    const secure = await sClient('secure')
    assert.match(secure.stdout, /Acceptable client certificate CA names\n[^\n]*exampleca\.test/)
    // Without a certificate the handshake ends in a TLS alert, as Go's (ngrok's) does.
    assert.match(secure.stderr, /alert handshake failure|alert certificate required|alert bad certificate/)
    // The open name is served as before, over HTTP/1.1 and without a certificate.
    const res = await get('open')
    assert.equal(res.status, 200)
  })

  it('plain HTTP, and a request for it on another name\'s TLS connection: 421 GW_ERR_MISDIRECTED_REQUEST', async () => {
    seen.length = 0
    const plain = await new Promise<{ status: number; code: string | undefined }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: relay.httpPort, path: '/', headers: { host: 'secure.localhost' } }, (res) => {
        res.resume()
        resolve({ status: res.statusCode!, code: res.headers['gw-error-code'] as string | undefined })
      })
      req.on('error', reject)
      req.end()
    })
    assert.deepEqual(plain, { status: 421, code: 'GW_ERR_MISDIRECTED_REQUEST' })
    // SNI open.localhost (no certificate asked), Host secure.localhost: the relay sees the connection was not secure's.
    const crossed = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'open.localhost', ca: relay.caCertPem!, ALPNProtocols: ['http/1.1'] }, () => {
        socket.write(`GET / HTTP/1.1\r\nHost: secure.localhost:${port}\r\nConnection: close\r\n\r\n`)
      })
      let text = ''
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
      socket.on('end', () => resolve(text))
      socket.on('error', reject)
    })
    assert.match(crossed, /^HTTP\/1\.1 421 /)
    assert.match(crossed, /gw-error-code: GW_ERR_MISDIRECTED_REQUEST/i)
    assert.equal(seen.length, 0)
  })

  it('HTTP/2 with a client certificate is served; an HTTP/2 connection made for another name is refused 421 for this one', async () => {
    const h2get = (session: ClientHttp2Session, name: string) => new Promise<{ status: number; code: string | undefined; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/', ':authority': `${name}.localhost:${port}` })
      let body = ''
      let status = 0
      let code: string | undefined
      req.on('response', (h) => {
        status = Number(h[':status'])
        code = h['gw-error-code'] as string | undefined
      })
      req.setEncoding('utf8')
      req.on('data', (d: string) => (body += d))
      req.on('end', () => resolve({ status, code, body }))
      req.on('error', reject)
      req.end()
    })
    seen.length = 0
    const secure = h2Connect(`https://127.0.0.1:${port}`, { ca: relay.caCertPem!, servername: 'secure.localhost', cert: pki.client, key: pki.clientKey })
    try {
      assert.deepEqual(await h2get(secure, 'secure'), { status: 200, code: undefined, body: `hello secure.localhost:${port}` })
      assert.equal(seen[0]!['x-cn'], 'service-a')
    } finally {
      secure.close()
    }
    // A browser may reuse a connection across names its certificate covers: never past terminate-tls.
    const open = h2Connect(`https://127.0.0.1:${port}`, { ca: relay.caCertPem!, servername: 'open.localhost', checkServerIdentity: () => undefined })
    try {
      assert.equal((await h2get(open, 'open')).status, 200)
      const crossed = await h2get(open, 'secure')
      assert.deepEqual([crossed.status, crossed.code], [421, 'GW_ERR_MISDIRECTED_REQUEST'])
    } finally {
      open.close()
    }
  })

  it('require-any takes an unverified certificate and closes a connection without one; request makes one optional but checks it', async () => {
    const strategies = await startAgent({
      relay: relay.httpUrl!,
      authtoken: TOKEN,
      endpoints: (['require-any', 'request'] as const).map((strategy) => ({
        name: strategy,
        publicName: strategy === 'request' ? 'optional' : 'anycert',
        upstream: upstream.url,
        policy: compilePolicy({
          on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { mutual_tls_certificate_authorities: [pki.ca], mutual_tls_verification_strategy: strategy } }] }],
          on_http_request: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-has': '${string(has(conn.tls.client))}', 'x-cn': '${conn.tls.client.subject.common_name}' } } }] }],
        }),
      })),
    })
    try {
      seen.length = 0
      const stranger = { cert: pki.stranger, key: pki.strangerKey }
      assert.equal((await get('anycert', stranger)).status, 200)
      assert.equal(seen.at(-1)!['x-cn'], 'stranger')
      await assert.rejects(get('anycert'))
      assert.equal((await get('optional')).status, 200)
      assert.equal(seen.at(-1)!['x-has'], 'false')
      assert.equal((await get('optional', { cert: pki.client, key: pki.clientKey })).status, 200)
      assert.equal(seen.at(-1)!['x-cn'], 'service-a')
      const before = seen.length
      await assert.rejects(get('optional', stranger))
      assert.equal(seen.length, before)
    } finally {
      await strategies.close()
    }
  })

  it('gw http --traffic-policy-file with terminate-tls: curl with the certificate is served, without it refused', { skip: CURL ? false : 'curl is not installed' }, async () => {
    const policyFile = join(dir, 'mtls.yml')
    writeFileSync(policyFile, [
      'on_tcp_connect:',
      '  - actions:',
      '      - type: terminate-tls',
      '        config:',
      '          mutual_tls_certificate_authorities:',
      `            - ${JSON.stringify(pki.ca)}`,
      'on_http_request:',
      '  - actions:',
      '      - type: add-headers',
      '        config:',
      '          headers:',
      '            x-cn: "${conn.tls.client.subject.common_name}"',
    ].join('\n'))
    const cli = spawnGw(['http', String(upstream.port), '--relay', relay.httpUrl!, '--authtoken', TOKEN, '--url', 'cli', '--traffic-policy-file', policyFile,
      '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'cli-gw.yml') })
    try {
      await cli.waitForLine((l) => l.includes('"started tunnel"'), 30_000)
      writeFileSync(join(dir, 'cli-client.crt'), pki.client)
      writeFileSync(join(dir, 'cli-client.key'), pki.clientKey)
      const base = ['-sS', '--cacert', caFile, '--resolve', `cli.localhost:${port}:127.0.0.1`, `https://cli.localhost:${port}/`]
      seen.length = 0
      const ok = await run(CURL!, ['--cert', join(dir, 'cli-client.crt'), '--key', join(dir, 'cli-client.key'), ...base])
      assert.equal(ok.code, 0, ok.stderr)
      assert.equal(ok.stdout, `hello cli.localhost:${port}`)
      assert.equal(seen[0]!['x-cn'], 'service-a')
      const refused = await run(CURL!, base)
      assert.notEqual(refused.code, 0)
      assert.equal(seen.length, 1)
    } finally {
      cli.kill()
      await cli.exited
    }
  })

  it('ngrok\'s route-by-client-certificate example (route-requests.mdx): CN service-a and service-b each reach their internal endpoint', async () => {
    const example = fixture('traffic-policy-examples-route-requests-b4cf74').policy as Record<string, unknown>
    const a = await startUpstream((_req, res) => res.end('from service-a'))
    const b = await startUpstream((_req, res) => res.end('from service-b'))
    const router = await startAgent({
      relay: relay.httpUrl!,
      authtoken: TOKEN,
      endpoints: [
        // The example's rules, behind the terminate-tls that gives them a client certificate.
        { name: 'router', publicName: 'router', upstream: upstream.url, policy: compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { mutual_tls_certificate_authorities: [pki.ca] } }] }], ...example }) },
        { name: 'a', upstream: a.url, internalHost: 'service-a.internal' },
        { name: 'b', upstream: b.url, internalHost: 'service-b.internal' },
      ],
    })
    try {
      assert.equal((await get('router', { cert: pki.client, key: pki.clientKey })).body, 'from service-a')
      assert.equal((await get('router', { cert: pki.serviceB, key: pki.serviceBKey })).body, 'from service-b')
    } finally {
      await router.close()
      await a.close()
      await b.close()
    }
  })

  it('min_version 1.3 on another endpoint: a TLS 1.2 client fails the handshake there and only there', async () => {
    const strict = await startAgent({
      relay: relay.httpUrl!,
      authtoken: TOKEN,
      endpoints: [{ name: 'strict', publicName: 'strict', upstream: upstream.url, policy: compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { min_version: '1.3' } }] }] }) }],
    })
    try {
      const tls12 = (name: string) => new Promise<string>((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, servername: `${name}.localhost`, ca: relay.caCertPem!, maxVersion: 'TLSv1.2' }, () => {
          resolve(`ok ${socket.getProtocol()}`)
          socket.end()
        })
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`))
      })
      assert.match(await tls12('strict'), /^error .*(VERSION|ALERT)/i)
      assert.equal(await tls12('open'), 'ok TLSv1.2')
      const d = new UndiciAgent({ connect: { ca: relay.caCertPem!, servername: 'strict.localhost' } })
      const res = await request(`https://127.0.0.1:${port}/`, { dispatcher: d, headers: { host: `strict.localhost:${port}` } })
      assert.equal(res.statusCode, 200)
      await res.body.text()
      await d.close()
    } finally {
      await strict.close()
    }
  })
})

describe('terminate-tls on an https endpoint: the relay\'s edges', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  let dir: string
  let pki: Pki
  let relay: Relay
  let upstream: Upstream
  before(async () => {
    dir = tempDir('gw-https-mtls-edges-')
    pki = makePki(dir)
    upstream = await startUpstream((_req, res) => res.end('ok'))
    relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir: join(dir, 'relay'), authtokens: [TOKEN] })
  })
  after(async () => {
    await relay?.close()
    await upstream?.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const mtls = () => compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { mutual_tls_certificate_authorities: [pki.ca] } }] }] })

  it('a connection made before the agent asked is not let past it (421), and once the agent leaves the name asks for no certificate again', async () => {
    const port = relay.httpsPort!
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'late.localhost', ca: relay.caCertPem!, ALPNProtocols: ['http/1.1'] })
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject))
    let text = ''
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
    const ask = async (): Promise<string> => {
      text = ''
      socket.write(`GET / HTTP/1.1\r\nHost: late.localhost:${port}\r\n\r\n`)
      for (let i = 0; i < 200 && !/\r\n\r\n/.test(text); i++) await new Promise((resolve) => setTimeout(resolve, 10))
      await new Promise((resolve) => setTimeout(resolve, 20))
      return text
    }
    assert.match(await ask(), /^HTTP\/1\.1 404 .*gw-error-code: GW_ERR_TUNNEL_NOT_FOUND/is)
    const agent = await startAgent({ relay: relay.httpUrl!, authtoken: TOKEN, endpoints: [{ publicName: 'late', upstream: upstream.url, policy: mtls() }] })
    try {
      assert.match(await ask(), /^HTTP\/1\.1 421 .*gw-error-code: GW_ERR_MISDIRECTED_REQUEST/is)
      socket.destroy()
      const caFile = join(dir, 'relay-ca.pem')
      writeFileSync(caFile, relay.caCertPem!)
      const held = await run(OPENSSL!, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'late.localhost', '-tls1_2', '-CAfile', caFile], 'Q\n')
      assert.match(held.stdout, /Acceptable client certificate CA names/)
    } finally {
      await agent.close()
    }
    const caFile = join(dir, 'relay-ca.pem')
    const gone = await run(OPENSSL!, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'late.localhost', '-tls1_2', '-CAfile', caFile], 'Q\n')
    assert.match(gone.stdout, /No client certificate CA names sent/)
  })

  it('pooled agents must give the same terminate-tls: GW_ERR_TERMINATE_TLS_MISMATCH', async () => {
    const first = await startAgent({ relay: relay.httpUrl!, authtoken: TOKEN, endpoints: [{ publicName: 'pool', pooling: true, upstream: upstream.url, policy: mtls() }] })
    try {
      await assert.rejects(startAgent({ relay: relay.httpUrl!, authtoken: TOKEN, endpoints: [{ publicName: 'pool', pooling: true, upstream: upstream.url }] }), { code: 'GW_ERR_TERMINATE_TLS_MISMATCH' })
      const other = compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { mutual_tls_certificate_authorities: [pki.ca], min_version: '1.3' } }] }] })
      await assert.rejects(startAgent({ relay: relay.httpUrl!, authtoken: TOKEN, endpoints: [{ publicName: 'pool', pooling: true, upstream: upstream.url, policy: other }] }), { code: 'GW_ERR_TERMINATE_TLS_MISMATCH' })
      const same = await startAgent({ relay: relay.httpUrl!, authtoken: TOKEN, endpoints: [{ publicName: 'pool', pooling: true, upstream: upstream.url, policy: mtls() }] })
      await same.close()
    } finally {
      await first.close()
    }
  })

  it('a reloaded certificate (--tls-cert, SIGHUP) serves the terminate-tls names too', async () => {
    // The relay's own certificates for *.mtls.test, signed by the run's CA, one before and one after the reload.
    const ssl = (...args: string[]) => execFileSync(OPENSSL!, args, { cwd: dir, stdio: 'ignore' })
    for (const n of ['edge1', 'edge2']) {
      ssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`)
      writeFileSync(join(dir, `${n}.ext`), 'subjectAltName=DNS:*.mtls.test\nextendedKeyUsage=serverAuth\n')
      ssl('x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${n}.ext`, '-out', `${n}.pem`)
    }
    const own = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'mtls.test', stateDir: join(dir, 'own'), authtokens: [TOKEN], tlsCert: join(dir, 'edge1.pem'), tlsKey: join(dir, 'edge1.key') })
    const agent = await startAgent({ relay: own.httpUrl!, authtoken: TOKEN, endpoints: [{ publicName: 'secure', upstream: upstream.url, policy: mtls() }] })
    const served = () => new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: own.httpsPort!, servername: 'secure.mtls.test', ca: pki.ca, cert: pki.client, key: pki.clientKey, ALPNProtocols: ['http/1.1'] }, () => {
        const cn = socket.getPeerCertificate().subject.CN
        socket.write(`GET / HTTP/1.1\r\nHost: secure.mtls.test\r\nConnection: close\r\n\r\n`)
        let text = ''
        socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
        socket.on('end', () => resolve(`${cn} ${text.split('\r\n')[0]}`))
      })
      socket.on('error', reject)
    })
    try {
      assert.equal(await served(), 'edge1 HTTP/1.1 200 OK')
      await own.reload({ tlsCert: join(dir, 'edge2.pem'), tlsKey: join(dir, 'edge2.key') })
      assert.equal(await served(), 'edge2 HTTP/1.1 200 OK')
    } finally {
      await agent.close()
      await own.close()
    }
  })

  it('gw relay --workers 2 (a cluster in one machine) refuses it with the reason, and serves the same agent without it', async () => {
    const workers = spawnGw(['relay', '--domain', 'tunnel.test', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '0', '--state-dir', join(dir, 'workers'),
      '--authtoken', TOKEN, '--workers', '2', '--log-format', 'json'])
    try {
      await waitFor(() => workers.lines.filter((l) => l.includes('"relay started"')).length >= 2, 60_000, 'both workers started')
      const port = (JSON.parse(workers.lines.find((l) => l.includes('"relay started"'))!) as { http_port: number }).http_port
      await assert.rejects(startAgent({ relay: `http://127.0.0.1:${port}`, authtoken: TOKEN, endpoints: [{ publicName: 'w', upstream: upstream.url, policy: mtls() }] }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GW_ERR_TERMINATE_TLS_INVALID')
        assert.match(err.message, /one of a cluster .* --workers 1/)
        return true
      })
      const plain = await startAgent({ relay: `http://127.0.0.1:${port}`, authtoken: TOKEN, endpoints: [{ publicName: 'w', upstream: upstream.url }] })
      await plain.close()
    } finally {
      workers.kill()
      await workers.exited
    }
  })

  it('an internal endpoint with terminate-tls is refused (it has no TLS connection of its own, so it would be skipped)', async () => {
    await assert.rejects(startAgent({ relay: relay.httpUrl!, authtoken: TOKEN, endpoints: [{ upstream: upstream.url, internalHost: 'svc.internal', policy: mtls() }] }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_CONFIG')
      assert.match(err.message, /internal endpoint svc\.internal has terminate-tls/)
      return true
    })
  })

  it('a relay without HTTPS refuses it: GW_ERR_TLS_DISABLED', async () => {
    const plain = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: join(dir, 'plain'), authtokens: [TOKEN] })
    try {
      await assert.rejects(startAgent({ relay: plain.httpUrl!, authtoken: TOKEN, endpoints: [{ publicName: 'x', upstream: upstream.url, policy: mtls() }] }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GW_ERR_TLS_DISABLED')
        assert.match(err.message, /terminate-tls/)
        return true
      })
    } finally {
      await plain.close()
    }
  })
})

describe('terminate-tls on an https endpoint, with a relay that does not run it, or a head that did not go through it', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  it('the agent refuses to serve the endpoint without it: GW_ERR_RELAY_NO_TERMINATE_TLS', async () => {
    // An older relay: it speaks the handshake, skips the field it does not know, and welcomes.
    const http = createHttpServer()
    const wss = new WebSocketServer({ server: http, path: '/_gw/agent' })
    let closedByAgent = false
    wss.on('connection', (ws) => {
      const session = new Session(createWebSocketTransport(ws), { client: false })
      session.on('stream', (control) => {
        const reader = new MessageReader(control, { maxMessageSize: 1 << 20 })
        void reader.next().then((m) => {
          if (!m || m.type !== MessageType.HELLO) return
          const hello = checkHello(decodeJson(m.payload, 'hello'))
          assert.ok(hello.endpoints[0]!.terminateTls, 'the agent asked for it')
          new MessageWriter(control).welcome({ version: PROTOCOL_VERSION, heartbeatTimeout: 15_000, endpoints: hello.endpoints.map((e) => ({ name: e.name ?? 'x', urls: [`https://${e.name}.old.test`] })) })
        })
      })
      session.once('close', () => (closedByAgent = true))
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const policy = compilePolicy({ on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { min_version: '1.3' } }] }] })
      await assert.rejects(
        startAgent({ relay: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, endpoints: [{ publicName: 'app', upstream: 'http://127.0.0.1:9', policy }], backoff: { initial: 10, max: 10 } }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'GW_ERR_RELAY_NO_TERMINATE_TLS')
          assert.match(err.message, /does not run terminate-tls/)
          return true
        },
      )
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.ok(closedByAgent, 'the agent closed the link')
    } finally {
      wss.close()
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
  })

  it('the agent checks every request itself: a head without the terminate-tls digest (or another one) is 421, the right one served', async () => {
    // A relay that says it runs terminate-tls, then sends heads as a cluster peer or a faulty relay might.
    const upstream = await startUpstream((req, res) => res.end(`cn=${req.headers['x-cn'] ?? ''}`))
    const http = createHttpServer()
    const wss = new WebSocketServer({ server: http, path: '/_gw/agent' })
    let session: Session | undefined
    let asked: TerminateTlsRequest | undefined
    const welcomed = new Promise<void>((resolve) => {
      wss.on('connection', (ws) => {
        session = new Session(createWebSocketTransport(ws), { client: false })
        session.on('stream', (control) => {
          const reader = new MessageReader(control, { maxMessageSize: 1 << 20 })
          void reader.next().then((m) => {
            const hello = checkHello(decodeJson(m!.payload, 'hello'))
            asked = hello.endpoints[0]!.terminateTls
            new MessageWriter(control).welcome({ version: PROTOCOL_VERSION, heartbeatTimeout: 15_000, endpoints: hello.endpoints.map((e) => ({ name: e.name!, urls: [`https://${e.name}.peer.test`], terminateTls: true })) })
            resolve()
          })
        })
      })
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const dir = tempDir('gw-https-mtls-agent-')
    const pki = makePki(dir)
    const agent = await startAgent({
      relay: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
      endpoints: [{
        publicName: 'app', upstream: upstream.url,
        policy: compilePolicy({
          on_tcp_connect: [{ actions: [{ type: 'terminate-tls', config: { mutual_tls_certificate_authorities: [pki.ca] } }] }],
          on_http_request: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-cn': '${conn.tls.client.subject.common_name}' } } }] }],
        }),
      }],
    })
    try {
      await welcomed
      const send = async (tls: RequestHead['tls']): Promise<{ status: number; code: string | undefined; body: string }> => {
        const stream = session!.open()
        new MessageWriter(stream).requestWithoutBody({
          method: 'GET', target: '/', httpVersion: '1.1', rawHeaders: ['Host', 'app.peer.test'], remoteAddress: '203.0.113.9', remotePort: 4000,
          scheme: 'https', tunnel: 'app', receivedAt: Date.now(), upgrade: false, expectContinue: false, hasBody: false, ...(tls ? { tls } : {}),
        })
        const reader = new MessageReader(stream, { maxMessageSize: 1 << 20 })
        const head = checkResponseHead(decodeJson((await reader.next())!.payload, 'response head'))
        let body = ''
        for await (const chunk of reader.body()) body += (chunk as Buffer).toString()
        return { status: head.status, code: head.error?.code ?? head.errorCode, body }
      }
      const base = { version: '1.3', cipher: 'TLS_AES_128_GCM_SHA256', sni: 'app.peer.test', alpn: 'http/1.1', resumed: false }
      assert.deepEqual((await send(undefined)).code, 'GW_ERR_MISDIRECTED_REQUEST')
      const wrong = await send({ ...base, terminateTls: terminateTlsDigest({ ...asked!, clientVerify: 'request' }) })
      // An error head: the relay renders gw's page with the code's status (421) and gw-error-code.
      assert.equal(wrong.code, 'GW_ERR_MISDIRECTED_REQUEST')
      assert.equal(ErrorCodes[wrong.code].status, 421)
      const ok = await send({ ...base, terminateTls: terminateTlsDigest(asked!), client: { pem: pki.client } })
      assert.deepEqual([ok.status, ok.body], [200, 'cn=service-a'])
    } finally {
      await agent.close()
      await upstream.close()
      wss.close()
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
