/**
 * terminate-tls in an http policy (the relay runs it) and the client-certificate reader
 * behind conn.tls.client.* (policy/x509.ts), against openssl: certificates made per run
 * (EC and RSA, RSA-PSS, IPv6 SANs, a subject needing RFC 2253 escapes, a validity past
 * 2049 in GeneralizedTime), each field compared with what openssl prints; the DER cut at
 * every offset and flipped bytes give undefined, never a throw; the wire checks of the
 * new hello, welcome and head fields; and what an http policy's on_tcp_connect refuses.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkHello, checkRequestHead, checkWelcome, terminateTlsDigest, type TerminateTlsRequest } from '@gw/protocol'
import { compilePolicy } from '@gw/cli/policy/index'
import { parseCertificate, parseCertificatePem } from '@gw/cli/policy/x509'
import { tempDir } from '../helpers/stack.js'

const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p))

describe('the client-certificate reader (conn.tls.client.*)', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  let dir: string
  const ssl = (...args: string[]) => execFileSync(OPENSSL!, args, { cwd: dir, encoding: 'utf8' })
  const certs: Record<string, string> = {}
  before(() => {
    dir = tempDir('gw-x509-')
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/C=DE/O=Test CA/CN=ca.test', '-addext', 'basicConstraints=critical,CA:TRUE')
    const leaf = (name: string, keyArgs: string[], subject: string, ext: string, extra: string[] = []) => {
      ssl('req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject)
      writeFileSync(join(dir, `${name}.ext`), ext)
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-extfile', `${name}.ext`, '-out', `${name}.pem`, ...extra)
      certs[name] = readFileSync(join(dir, `${name}.pem`), 'utf8')
    }
    leaf('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/C=US/ST=California/L=Mountain View/street=1 Main St/postalCode=94043/O=Acme, Inc./OU=A/OU=B/CN=#lead\\+plus "q" ',
      'subjectAltName=DNS:a.example,DNS:b.example,IP:10.0.0.1,IP:2001:db8::1,IP:::1,email:x@example.com,URI:spiffe://t/a\nkeyUsage=critical,digitalSignature\n', ['-days', '2', '-sha384'])
    // The signature algorithm is the signer's: RSA ones self-signed.
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-sha256', '-keyout', 'rsa.key', '-out', 'rsa.pem', '-subj', '/CN=rsa client')
    certs.rsa = readFileSync(join(dir, 'rsa.pem'), 'utf8')
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-sha512', '-sigopt', 'rsa_padding_mode:pss', '-keyout', 'pss.key', '-out', 'pss.pem', '-subj', '/CN=pss client')
    certs.pss = readFileSync(join(dir, 'pss.pem'), 'utf8')
    // Valid past 2049: GeneralizedTime (RFC 5280 §4.1.2.5).
    leaf('long', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/CN=long', 'basicConstraints=CA:FALSE\n', ['-days', '10000'])
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('reads subject, issuer, serial, validity, SANs, signature algorithm and extensions as openssl does', () => {
    const c = parseCertificatePem(certs.ec!)!
    assert.equal(c.subject.common_name, '#lead+plus "q" ')
    assert.deepEqual(c.subject.organization, ['Acme, Inc.'])
    assert.deepEqual(c.subject.organizational_unit, ['A', 'B'])
    assert.deepEqual(c.subject.country, ['US'])
    assert.deepEqual(c.subject.province, ['California'])
    assert.deepEqual(c.subject.locality, ['Mountain View'])
    assert.deepEqual(c.subject.street_address, ['1 Main St'])
    assert.deepEqual(c.subject.postal_code, ['94043'])
    // Go's pkix.Name.String(): last RDN first, RFC 2253 escapes (a leading #, a trailing space, + and ").
    assert.equal(c.subject.text, 'CN=\\#lead\\+plus \\"q\\"\\ ,OU=B,OU=A,O=Acme\\, Inc.,POSTALCODE=94043,STREET=1 Main St,L=Mountain View,ST=California,C=US')
    assert.equal(c.issuer.text, 'CN=ca.test,O=Test CA,C=DE')
    const x = new X509Certificate(certs.ec!)
    assert.equal(c.serial_number, x.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''))
    assert.equal(c.not_before.getTime(), Date.parse(x.validFrom))
    assert.equal(c.not_after.getTime(), Date.parse(x.validTo))
    assert.deepEqual(c.san.dns_names, ['a.example', 'b.example'])
    assert.deepEqual(c.san.ip_addresses, ['10.0.0.1', '2001:db8::1', '::1'])
    assert.deepEqual(c.san.email_addresses, ['x@example.com'])
    assert.deepEqual(c.san.uris, ['spiffe://t/a'])
    assert.equal(c.san.text, 'DNS:a.example, DNS:b.example, IP Address:10.0.0.1, IP Address:2001:db8::1, IP Address:::1, email:x@example.com, URI:spiffe://t/a')
    assert.equal(c.signature_algorithm, 'ECDSA-SHA384')
    const usage = c.extensions.find((e) => e.id === '2.5.29.15')!
    assert.equal(usage.critical, true)
    assert.deepEqual([...usage.value], [0x03, 0x02, 0x07, 0x80]) // BIT STRING: digitalSignature
    assert.equal(c.extensions.find((e) => e.id === '2.5.29.17')!.critical, false)
    assert.equal(parseCertificatePem(certs.rsa!)!.signature_algorithm, 'SHA256-RSA')
    assert.equal(parseCertificatePem(certs.pss!)!.signature_algorithm, 'SHA512-RSAPSS')
    const long = parseCertificatePem(certs.long!)!
    assert.equal(long.not_after.getTime(), Date.parse(new X509Certificate(certs.long!).validTo))
    assert.ok(long.not_after.getUTCFullYear() > 2049)
  })

  it('a certificate cut at any offset, or with a byte flipped, reads as undefined or a certificate, never a throw', () => {
    const der = new X509Certificate(certs.ec!).raw
    for (let n = 0; n < der.length; n++) {
      assert.doesNotThrow(() => {
        try {
          parseCertificate(new Uint8Array(der.subarray(0, n)))
        } catch (err) {
          if ((err as Error).constructor.name !== 'DerError') throw err
        }
      }, `cut at ${n}`)
      const flipped = Buffer.from(der)
      flipped[n] = flipped[n]! ^ 0xff
      const pem = `-----BEGIN CERTIFICATE-----\n${flipped.toString('base64')}\n-----END CERTIFICATE-----\n`
      assert.doesNotThrow(() => parseCertificatePem(pem), `flipped at ${n}`)
    }
    assert.equal(parseCertificatePem('not a certificate'), undefined)
  })
})

describe('terminate-tls on the wire (untrusted input)', () => {
  const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'
  const t: TerminateTlsRequest = { minVersion: '1.2', maxVersion: '1.3', clientCas: [ca], clientVerify: 'require-and-verify' }
  const hello = (e: unknown) => ({ version: 1, authtoken: '', agentId: 'a', client: 'gw', endpoints: [e] })
  it('a hello asks for it on http endpoints only, with its fields checked', () => {
    assert.ok(checkHello(hello({ proto: 'http', name: 'a', terminateTls: t })))
    for (const bad of [
      { proto: 'tls', name: 'a', terminateTls: t },
      { proto: 'http', terminateTls: { ...t, minVersion: '1.1' } },
      { proto: 'http', terminateTls: { ...t, minVersion: '1.3', maxVersion: '1.2' } },
      { proto: 'http', terminateTls: { ...t, clientVerify: 'none' } },
      { proto: 'http', terminateTls: { ...t, clientCas: ['not pem'] } },
      { proto: 'http', terminateTls: { ...t, clientCas: Array.from({ length: 33 }, () => ca) } },
      { proto: 'http', terminateTls: { ...t, clientCas: [`${ca}${'A'.repeat(256 * 1024)}`] } },
      { proto: 'http', terminateTls: true },
    ]) assert.throws(() => checkHello(hello(bad)), { code: 'GW_ERR_MESSAGE_MALFORMED' }, JSON.stringify(bad).slice(0, 120))
  })
  it('a welcome says it runs it; the head carries the digest and the client certificate', () => {
    assert.ok(checkWelcome({ version: 1, heartbeatTimeout: 1, endpoints: [{ name: 'a', urls: [], terminateTls: true }] }))
    assert.throws(() => checkWelcome({ version: 1, heartbeatTimeout: 1, endpoints: [{ name: 'a', urls: [], terminateTls: 'yes' }] }), { code: 'GW_ERR_MESSAGE_MALFORMED' })
    const head = (tls: unknown) => ({ method: 'GET', target: '/', httpVersion: '1.1', rawHeaders: [], remoteAddress: '1.2.3.4', remotePort: 1, scheme: 'https', tunnel: 'a', receivedAt: 0, upgrade: false, expectContinue: false, hasBody: false, tls })
    const base = { version: '1.3', cipher: 'TLS_AES_128_GCM_SHA256', sni: 'a', alpn: 'h2', resumed: false }
    const digest = terminateTlsDigest(t)
    assert.match(digest, /^[0-9a-f]{64}$/)
    assert.notEqual(digest, terminateTlsDigest({ ...t, clientVerify: 'request' }))
    assert.ok(checkRequestHead(head({ ...base, terminateTls: digest, client: { pem: `${ca}\n` } })))
    for (const bad of [
      { ...base, terminateTls: 'abc' },
      { ...base, client: { pem: 'hello' } },
      { ...base, client: { pem: `${ca}\n-----BEGIN PRIVATE KEY-----` } },
      { ...base, client: { pem: `-----BEGIN CERTIFICATE-----\n${'A'.repeat(17 * 1024)}\n-----END CERTIFICATE-----\n` } },
      { ...base, client: 'pem' },
    ]) assert.throws(() => checkRequestHead(head(bad)), { code: 'GW_ERR_MESSAGE_MALFORMED' }, JSON.stringify(bad).slice(0, 120))
  })
})

describe('on_tcp_connect in an http policy', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  let ca: string
  let dir: string
  before(() => {
    dir = tempDir('gw-https-tt-')
    execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', 'k', '-out', 'c', '-subj', '/CN=ca', '-addext', 'basicConstraints=critical,CA:TRUE'], { cwd: dir, stdio: 'ignore' })
    ca = readFileSync(join(dir, 'c'), 'utf8')
  })
  after(() => rmSync(dir, { recursive: true, force: true }))
  const doc = (rules: unknown[]) => ({ on_tcp_connect: rules, on_http_request: [] })
  const tt = (config: Record<string, unknown>) => ({ actions: [{ type: 'terminate-tls', config }] })
  it('terminate-tls becomes what the relay is asked to run; an empty phase asks nothing', () => {
    assert.deepEqual(compilePolicy(doc([tt({ mutual_tls_certificate_authorities: [ca], min_version: '1.3', mutual_tls_verification_strategy: 'request' })])).terminateTls,
      { minVersion: '1.3', maxVersion: '1.3', clientCas: [ca.trim()], clientVerify: 'request' })
    assert.equal(compilePolicy(doc([])).terminateTls, undefined)
    assert.equal(compilePolicy({ on_http_request: [] }).terminateTls, undefined)
  })
  it('refuses, with the reason: a certificate of its own, expressions, other actions, two terminate-tls, a non-CA', () => {
    const refused = (d: unknown, match: RegExp) => assert.throws(() => compilePolicy(d), (err: Error) => {
      assert.match(err.message, match)
      return true
    })
    refused(doc([tt({ server_certificate: ca, server_private_key: 'x' })]), /server_certificate: is not supported on an https endpoint: the relay ends its TLS/)
    refused(doc([{ expressions: ["conn.client_ip == '1.2.3.4'"], ...tt({}) }]), /expressions: are not supported in on_tcp_connect on an http endpoint/)
    refused(doc([{ actions: [{ type: 'restrict-ips', config: { deny: ['1.2.3.4/32'] } }] }]), /restrict-ips is not supported in on_tcp_connect on an http endpoint/)
    refused(doc([tt({}), tt({})]), /terminate-tls is given twice/)
    refused(doc([tt({ mutual_tls_certificate_authorities: ['ca_123'] })]), /kept in ngrok's cloud/)
    refused(doc([tt({ min_version: '1.3', max_version: '1.2' })]), /must not be below min_version/)
    refused(doc([tt({ bogus: 1 })]), /bogus/)
  })
})
