/**
 * Custom domains (`gw relay --custom-domains`) against real DNS and a real ACME CA:
 * pebble-challtestsrv is the DNS server both the relay (--dns-server) and pebble ask, and
 * its management API sets the CNAME and TXT records a customer would create. Pebble
 * validates the relay's HTTP-01 answers for the custom hosts; the certificates are read by
 * curl and undici trusting only pebble's root. Agents are the real `gw http` binary and
 * the agent library.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type PeerCertificate } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Client } from 'undici'
import { generate } from 'selfsigned'
import { resolveRelayOptions, startRelay, tokenChallengeValue, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { preparePebble, PEBBLE_SKIP, type Pebble } from '../helpers/pebble.js'
import { spawnGw, startUpstream, tempDir, waitFor, type Spawned, type Upstream } from '../helpers/stack.js'

const DOMAIN = 'edge.test'
const TOKEN_A = 'token-a-0123456789abcdef'
const TOKEN_B = 'token-b-0123456789abcdef'
const HAVE_CURL = !(await new Promise<boolean>((resolve) => execFile('curl', ['--version'], (err) => resolve(Boolean(err)))))

interface LogLine {
  level: string
  msg: string
  fields: Record<string, unknown>
}

/** A GET to the relay's HTTP port with this Host. */
function getWithHost(port: number, host: string, path = '/'): Promise<{ status: number; body: string; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, body, code: res.headers['gw-error-code'] as string | undefined }))
    }).on('error', reject).end()
  })
}

/** The certificate the HTTPS port serves for `servername`, checked against `ca`. */
function served(port: number, servername: string, ca: string): Promise<{ cert: PeerCertificate; authorized: boolean; error: string | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = socket.getPeerCertificate(true)
      resolve({ cert, authorized: socket.authorized, error: socket.authorizationError ? String(socket.authorizationError) : undefined })
      socket.end()
    })
    socket.setTimeout(90_000, () => socket.destroy(new Error(`no TLS handshake for ${servername}`)))
    socket.on('error', reject)
  })
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '60', ...args], (err, stdout, stderr) => resolve({ code: err ? Number(err.code) || 1 : 0, stdout, stderr }))
  })
}

describe('custom domains, checked in DNS (pebble-challtestsrv) and certified by pebble', { skip: PEBBLE_SKIP }, () => {
  let dir: string
  let pebble: Pebble
  let relay: Relay
  let upstream: Upstream
  let root: string
  const logs: LogLine[] = []
  const agents: Agent[] = []
  const spawned: Spawned[] = []
  const issued = (host: string): LogLine[] => logs.filter((l) => l.msg === 'acme: certificate issued' && l.fields.host === host)

  before(async () => {
    dir = tempDir('gw-custom-')
    const prepared = await preparePebble({ dir })
    const [httpPort, httpsPort] = prepared.relayPorts
    pebble = await prepared.start({ httpPort, tlsPort: httpsPort })
    root = await pebble.root()
    upstream = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`upstream saw ${req.headers.host} ${req.url}`)
    })
    relay = await startRelay({
      host: '127.0.0.1',
      httpPort,
      httpsPort,
      domain: DOMAIN,
      authtokens: [TOKEN_A, TOKEN_B],
      stateDir: join(dir, 'state'),
      customDomains: true,
      dnsServer: pebble.dnsServer,
      acme: { email: 'ops@edge.test', directoryUrl: prepared.directoryUrl, directoryCa: prepared.listenerCa, challenges: ['http-01'], handshakeWait: 60_000 },
      log: (level, msg, fields = {}) => void logs.push({ level, msg, fields }),
    })
  })

  after(async () => {
    for (const child of spawned) {
      child.kill()
      await child.exited
    }
    for (const agent of agents) await agent.close()
    await relay?.close()
    await pebble?.close()
    await upstream?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const agentFor = async (host: string, authtoken: string): Promise<Agent> => {
    const agent = await startAgent({ relay: relay.httpUrl!, authtoken, endpoints: [{ upstream: upstream.url, publicName: host.split('.')[0]!, publicHost: host }] })
    agents.push(agent)
    return agent
  }

  it('a CNAME to the relay\'s domain: the real gw http gets the URL, requests with that Host reach the upstream, and curl gets pebble\'s certificate', async () => {
    const host = 'app.customer.test'
    await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: `edge-in.${DOMAIN}.` })
    const agent = spawnGw(['http', String(upstream.port), '--relay', relay.httpUrl!, '--url', `https://${host}`, '--authtoken', TOKEN_A, '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'])
    spawned.push(agent)
    await agent.waitForLine((l) => l.includes('"started tunnel"') && l.includes('https://'), 30_000)
    const urls = agent.lines.filter((l) => l.includes('"started tunnel"')).map((l) => (JSON.parse(l) as { url: string }).url)
    assert.deepEqual(urls, [`http://${host}:${relay.httpPort}`, `https://${host}:${relay.httpsPort}`])
    const verified = logs.find((l) => l.msg === 'custom domain verified' && l.fields.host === host)
    assert.deepEqual([verified?.fields.by, verified?.fields.target], ['cname', `edge-in.${DOMAIN}`])

    assert.deepEqual(await getWithHost(relay.httpPort!, host, '/over-http'), { status: 200, body: `upstream saw ${host} /over-http`, code: undefined })
    // The order starts when the host is verified; the handshake waits for it.
    const got = await served(relay.httpsPort!, host, root)
    assert.equal(got.authorized, true, `not trusted by pebble's root: ${got.error}`)
    assert.ok(new X509Certificate(got.cert.raw).checkIssued(new X509Certificate(await pebble.intermediate())), 'signed by pebble\'s intermediate')
    assert.equal(got.cert.subjectaltname, `DNS:${host}`)
    assert.equal(issued(host).length, 1)
    assert.equal(issued(host)[0]!.fields.challenge, 'http-01')
    assert.ok(existsSync(join(dir, 'state', 'acme', 'certs', `${host}.pem`)))

    if (HAVE_CURL) {
      const rootPath = join(dir, 'pebble-root.pem')
      writeFileSync(rootPath, root)
      const port = relay.httpsPort!
      const res = await curl(['--cacert', rootPath, '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/over-https`])
      assert.equal(res.code, 0, res.stderr)
      assert.equal(res.stdout, `upstream saw ${host}:${port} /over-https`)
    }
    const names = JSON.parse(readFileSync(join(dir, 'state', 'names.json'), 'utf8')) as Record<string, { owner: string }>
    assert.ok(names[host]?.owner.startsWith('token:'), 'the host is owned like a name')
  })

  it('another token asking for a verified host is refused, though the CNAME points here too', async () => {
    await assert.rejects(agentFor('app.customer.test', TOKEN_B), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_NAME_TAKEN')
      assert.match(err.message, /app\.customer\.test belongs to another authtoken/)
      return true
    })
    // The owner's tunnel is untouched.
    assert.equal((await getWithHost(relay.httpPort!, 'app.customer.test')).status, 200)
  })

  it('a TXT record _gw-challenge.<host> with the token\'s value: verified, routed, and served over https to undici trusting pebble\'s root', async () => {
    const host = 'customer-apex.test'
    await pebble.challtestsrv('/set-txt', { host: `_gw-challenge.${host}.`, value: tokenChallengeValue(TOKEN_A, host) })
    const agent = await agentFor(host, TOKEN_A)
    assert.deepEqual(agent.tunnels[0]!.publicUrls, [`http://${host}:${relay.httpPort}`, `https://${host}:${relay.httpsPort}`])
    assert.equal(logs.find((l) => l.msg === 'custom domain verified' && l.fields.host === host)?.fields.by, 'txt')
    assert.deepEqual(await getWithHost(relay.httpPort!, host, '/txt'), { status: 200, body: `upstream saw ${host} /txt`, code: undefined })
    const client = new Client(`https://127.0.0.1:${relay.httpsPort}`, { connect: { ca: root, servername: host } })
    try {
      const res = await client.request({ method: 'GET', path: '/undici', headers: { host } })
      assert.equal(res.statusCode, 200)
      assert.equal(await res.body.text(), `upstream saw ${host} /undici`)
    } finally {
      await client.close()
    }
    assert.equal(issued(host).length, 1)
  })

  it('no record: refused with the host, what was found and the records to create; nothing is claimed or ordered', async () => {
    const host = 'nothing.customer.test'
    await assert.rejects(agentFor(host, TOKEN_A), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_CUSTOM_DOMAIN_UNVERIFIED')
      assert.ok(err.message.includes(`${host} does not point at this relay: it has no CNAME, and there is no TXT record _gw-challenge.${host}`), err.message)
      assert.ok(err.message.includes(`Create "${host} CNAME ${DOMAIN}"`), err.message)
      assert.ok(err.message.includes(`"_gw-challenge.${host} TXT ${tokenChallengeValue(TOKEN_A, host)}"`), err.message)
      return true
    })
    // Not a tunnel: the relay's own host, with no certificate ordered for it.
    const res = await getWithHost(relay.httpPort!, host, '/x')
    assert.equal(res.code, 'GW_ERR_TUNNEL_NOT_FOUND')
    assert.match(res.body, /is the relay itself/)
    const got = await served(relay.httpsPort!, host, root)
    assert.equal(got.authorized, false)
    assert.equal(got.cert.issuer.CN, `gw relay CA (${DOMAIN})`)
    assert.ok(logs.some((l) => l.fields.code === 'GW_ERR_ACME_NOT_HELD' && l.fields.host === host))
    assert.ok(!pebble.log().includes(host), 'pebble never heard of the host')
    await waitFor(() => existsSync(join(dir, 'state', 'names.json')), 5_000, 'names.json')
    const names = JSON.parse(readFileSync(join(dir, 'state', 'names.json'), 'utf8')) as Record<string, unknown>
    assert.equal(names[host], undefined)
  })

  it('a CNAME elsewhere, and a TXT value of another token: refused, naming what DNS holds', async () => {
    const host = 'elsewhere.customer.test'
    await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: 'lb.other-cloud.test.' })
    await pebble.challtestsrv('/set-txt', { host: `_gw-challenge.${host}.`, value: tokenChallengeValue(TOKEN_B, host) })
    await assert.rejects(agentFor(host, TOKEN_A), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_CUSTOM_DOMAIN_UNVERIFIED')
      assert.ok(err.message.includes('its CNAME is lb.other-cloud.test'), err.message)
      assert.ok(err.message.includes(`holds "${tokenChallengeValue(TOKEN_B, host)}", not this authtoken's value`), err.message)
      return true
    })
  })

  it('a CNAME chain that reaches a name under the domain is followed', async () => {
    const host = 'www.chained.test'
    await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: 'cdn.middle.test.' })
    await pebble.challtestsrv('/set-cname', { host: 'cdn.middle.test.', target: `${DOMAIN}.` })
    const agent = await agentFor(host, TOKEN_B)
    assert.equal(agent.tunnels[0]!.publicUrls[0], `http://${host}:${relay.httpPort}`)
    assert.equal(logs.find((l) => l.msg === 'custom domain verified' && l.fields.host === host)?.fields.target, DOMAIN)
  })

  it('a DNS server that fails (SERVFAIL) is GW_ERR_CUSTOM_DOMAIN_DNS, which the agent retries, and not a refusal', async () => {
    const host = 'broken.customer.test'
    await pebble.challtestsrv('/set-servfail', { host: `${host}.` })
    await pebble.challtestsrv('/set-servfail', { host: `_gw-challenge.${host}.` })
    await assert.rejects(agentFor(host, TOKEN_A), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_CUSTOM_DOMAIN_DNS')
      assert.match(err.message, /cannot check that broken\.customer\.test points at this relay: the DNS lookup failed \(.*ESERVFAIL/)
      return true
    })
  })

  it('gw tls --url <custom host>: routed by SNI to the upstream, which holds its own certificate; the relay orders none', async () => {
    const host = 'secure.customer.test'
    await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: `${DOMAIN}.` })
    const own = await generate([{ name: 'commonName', value: host }], {
      keyType: 'ec', curve: 'P-256', algorithm: 'sha256', extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: host }] }],
    })
    const tlsUpstream = createHttpsServer({ cert: own.cert, key: own.private }, (req, res) => res.end(`tls upstream saw ${req.headers.host}`))
    await new Promise<void>((resolve) => tlsUpstream.listen(0, '127.0.0.1', resolve))
    try {
      const agent = await startAgent({ relay: relay.httpUrl!, authtoken: TOKEN_A, endpoints: [{ proto: 'tls', publicName: 'secure', publicHost: host, upstream: `127.0.0.1:${(tlsUpstream.address() as AddressInfo).port}` }] })
      agents.push(agent)
      assert.deepEqual(agent.tunnels[0]!.publicUrls, [`tls://${host}:${relay.httpsPort}`])
      const client = new Client(`https://127.0.0.1:${relay.httpsPort}`, { connect: { ca: own.cert, servername: host } })
      try {
        const res = await client.request({ method: 'GET', path: '/', headers: { host } })
        assert.equal(await res.body.text(), `tls upstream saw ${host}`)
      } finally {
        await client.close()
      }
      assert.equal(issued(host).length, 0)
    } finally {
      tlsUpstream.closeAllConnections()
      await new Promise((resolve) => tlsUpstream.close(resolve))
    }
  })

  it('a DNS failure for a host the token already owns admits it on its earlier check (a resolver outage does not end tunnels)', async () => {
    const host = 'app.customer.test'
    // A second relay on a copy of the state: it knows the owner from names.json, and has no DNS answers cached.
    const state = join(dir, 'state-copy')
    mkdirSync(state, { recursive: true })
    copyFileSync(join(dir, 'state', 'names.json'), join(state, 'names.json'))
    const second: LogLine[] = []
    const again = await startRelay({
      host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: DOMAIN, authtokens: [TOKEN_A, TOKEN_B], stateDir: state,
      customDomains: true, dnsServer: pebble.dnsServer, log: (level, msg, fields = {}) => void second.push({ level, msg, fields }),
    })
    try {
      await pebble.challtestsrv('/set-servfail', { host: `${host}.` })
      await pebble.challtestsrv('/set-servfail', { host: `_gw-challenge.${host}.` })
      const agent = await startAgent({ relay: again.httpUrl!, authtoken: TOKEN_A, endpoints: [{ upstream: upstream.url, publicName: 'app', publicHost: host }] })
      try {
        assert.deepEqual(agent.tunnels[0]!.publicUrls, [`http://${host}:${again.httpPort}`])
        assert.ok(second.some((l) => l.msg === 'custom domain: DNS lookup failed; admitted on its earlier check' && l.fields.host === host))
        assert.equal((await getWithHost(again.httpPort!, host, '/outage')).body, `upstream saw ${host} /outage`)
      } finally {
        await agent.close()
      }
      // A host nobody owned yet is not admitted on a failed lookup.
      await assert.rejects(startAgent({ relay: again.httpUrl!, authtoken: TOKEN_A, endpoints: [{ upstream: upstream.url, publicName: 'broken', publicHost: 'broken.customer.test' }] }),
        { code: 'GW_ERR_CUSTOM_DOMAIN_DNS' })
    } finally {
      await again.close()
      await pebble.challtestsrv('/clear-servfail', { host: `${host}.` })
      await pebble.challtestsrv('/clear-servfail', { host: `_gw-challenge.${host}.` })
    }
  })

  it('gw relay --custom-domains --dns-server: the real binaries; with the generated certificate a custom host gets an http URL only', async () => {
    const host = 'cli.customer.test'
    await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: `${DOMAIN}.` })
    const relayCli = spawnGw(['relay', '--domain', DOMAIN, '--host', '127.0.0.1', '--http-port', '0', '--https-port', '0', '--state-dir', join(dir, 'cli-state'),
      '--authtoken', TOKEN_A, '--custom-domains', '--dns-server', pebble.dnsServer, '--log-format', 'json'])
    spawned.push(relayCli)
    const started = JSON.parse(await relayCli.waitForLine((l) => l.includes('"relay started"'))) as { http_port: number; custom_domains?: boolean }
    assert.equal(started.custom_domains, true)
    const agent = spawnGw(['http', String(upstream.port), '--relay', `http://127.0.0.1:${started.http_port}`, '--url', host, '--authtoken', TOKEN_A, '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'])
    spawned.push(agent)
    const line = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'), 30_000)) as { url: string }
    assert.equal(line.url, `http://${host}:${started.http_port}`)
    // No https URL: the generated certificate covers *.edge.test only (a short wait for a second line that must not come).
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(agent.lines.filter((l) => l.includes('"started tunnel"')).length, 1, agent.lines.join('\n'))
    assert.deepEqual(await getWithHost(started.http_port, host, '/cli'), { status: 200, body: `upstream saw ${host} /cli`, code: undefined })
    assert.ok(relayCli.lines.some((l) => l.includes('custom domain verified') && l.includes(host)), relayCli.lines.join('\n'))
  })
})

describe('custom domains off, and the operator\'s own certificate', () => {
  it('refuses options that cannot work, with the value and the fix', () => {
    const refused = (options: Partial<RelayOptions>, expected: RegExp): void => {
      assert.throws(() => resolveRelayOptions({ domain: DOMAIN, host: '127.0.0.1', ...options }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GW_ERR_RELAY_OPTION_INVALID')
        assert.match(err.message, expected)
        return true
      })
    }
    refused({ customDomains: true, dnsServer: 'dns.example.com' }, /--dns-server "dns\.example\.com" is not a DNS server address; give an IP address with an optional port, e\.g\. 127\.0\.0\.1:53/)
    refused({ customDomains: true, dnsServer: '127.0.0.1:0' }, /--dns-server "127\.0\.0\.1:0" is not a DNS server address/)
    refused({ dnsServer: '127.0.0.1' }, /--dns-server 127\.0\.0\.1:53 is only used to check custom domains; add --custom-domains/)
    assert.equal(resolveRelayOptions({ domain: DOMAIN, host: '127.0.0.1', customDomains: true, dnsServer: '::1' }).dnsServer, '[::1]:53')
    assert.equal(resolveRelayOptions({ domain: DOMAIN, host: '127.0.0.1', customDomains: true, dnsServer: '10.1.2.3:5353' }).dnsServer, '10.1.2.3:5353')
  })

  it('refuses a custom host that is an address, not a host name, or under the relay\'s own domain', async () => {
    const dir = tempDir('gw-custom-bad-')
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: DOMAIN, stateDir: dir, customDomains: true, dnsServer: '127.0.0.1:9' })
    try {
      for (const [host, code, message] of [
        ['10.0.0.1', 'GW_ERR_NAME_INVALID', /"10\.0\.0\.1" is not a host name a custom domain can have/],
        ['under_score.customer.test', 'GW_ERR_NAME_INVALID', /is not a host name a custom domain can have/],
        [`a.b.${DOMAIN}`, 'GW_ERR_DOMAIN_NOT_SERVED', /this relay serves \*\.edge\.test, not a\.b\.edge\.test; ask for <name>\.edge\.test/],
      ] as const) {
        await assert.rejects(startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, publicName: 'x', publicHost: host }] }), (err: Error & { code?: string }) => {
          assert.equal(err.code, code, `${host}: ${err.message}`)
          assert.match(err.message, message)
          return true
        })
      }
    } finally {
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a relay without --custom-domains refuses a host outside its domain as before, saying custom domains are off', async () => {
    const dir = tempDir('gw-custom-off-')
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: DOMAIN, stateDir: dir })
    try {
      await assert.rejects(startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, publicName: 'app', publicHost: 'app.customer.test' }] }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GW_ERR_DOMAIN_NOT_SERVED')
        assert.match(err.message, /this relay serves \*\.edge\.test, not app\.customer\.test \(it takes no custom domains: gw relay --custom-domains\); ask for <name>\.edge\.test/)
        return true
      })
      assert.equal((await getWithHost(relay.httpPort!, 'app.customer.test', '/x')).code, 'GW_ERR_TUNNEL_NOT_FOUND')
    } finally {
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('with --tls-cert and no ACME, a custom host gets an https URL only when the certificate names it', { skip: PEBBLE_SKIP }, async () => {
    const dir = tempDir('gw-custom-cert-')
    const prepared = await preparePebble({ dir })
    const [httpPort, httpsPort] = prepared.relayPorts
    const pebble = await prepared.start({ httpPort, tlsPort: httpsPort })
    const pair = await generate([{ name: 'commonName', value: DOMAIN }], {
      keyType: 'ec', curve: 'P-256', algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: `*.${DOMAIN}` }, { type: 2, value: 'covered.customer.test' }] }],
    })
    writeFileSync(join(dir, 'cert.pem'), pair.cert)
    writeFileSync(join(dir, 'key.pem'), pair.private)
    const upstream = await startUpstream((req, res) => res.end(`via ${req.headers.host}`))
    const relay = await startRelay({
      host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: DOMAIN, stateDir: join(dir, 'state'), tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem'),
      customDomains: true, dnsServer: pebble.dnsServer,
    })
    const agents: Agent[] = []
    try {
      for (const host of ['covered.customer.test', 'plain.customer.test']) await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: `${DOMAIN}.` })
      const covered = await startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, publicName: 'covered', publicHost: 'covered.customer.test' }] })
      agents.push(covered)
      assert.deepEqual(covered.tunnels[0]!.publicUrls, [`http://covered.customer.test:${relay.httpPort}`, `https://covered.customer.test:${relay.httpsPort}`])
      const plain = await startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, publicName: 'plain', publicHost: 'plain.customer.test' }] })
      agents.push(plain)
      assert.deepEqual(plain.tunnels[0]!.publicUrls, [`http://plain.customer.test:${relay.httpPort}`])
      const client = new Client(`https://127.0.0.1:${relay.httpsPort}`, { connect: { ca: pair.cert, servername: 'covered.customer.test' } })
      try {
        const res = await client.request({ method: 'GET', path: '/', headers: { host: 'covered.customer.test' } })
        assert.equal(await res.body.text(), 'via covered.customer.test')
      } finally {
        await client.close()
      }
    } finally {
      for (const agent of agents) await agent.close()
      await relay.close()
      await upstream.close()
      await pebble.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
