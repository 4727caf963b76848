/**
 * ACME certificates and custom domains in a cluster of two relays on one real
 * redis-server, against a real ACME CA (pebble, with pebble-challtestsrv as its DNS and
 * the relays' --dns-server). Pebble validates on relay B's ports only, so every
 * certificate an agent of relay A gets is validated through relay B, which answers
 * from what relay A wrote to Redis. Certificates are read by node's TLS client and
 * checked against pebble's intermediate; each challenge kind (HTTP-01 on B's HTTP port,
 * TLS-ALPN-01 on B's HTTPS port) has its own cluster.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startRelay, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { preparePebble, PEBBLE_SKIP, type Pebble } from '../helpers/pebble.js'
import { REDIS_SKIP, startRedis, type RedisServer } from '../helpers/redis.js'
import { startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'

const DOMAIN = 'acme.test'
const TOKEN_1 = 'cluster-acme-token-1-0123456789'
const TOKEN_2 = 'cluster-acme-token-2-0123456789'
const SECRET = 'cluster-acme-secret-0123456789abcdef'

interface LogLine {
  relay: string
  msg: string
  fields: Record<string, unknown>
}

/** The leaf certificate `port` serves for `servername` (DER). */
function served(port: number, servername: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      resolve(socket.getPeerCertificate(true).raw)
      socket.end()
    })
    socket.setTimeout(120_000, () => socket.destroy(new Error(`no TLS handshake for ${servername}`)))
    socket.on('error', reject)
  })
}

for (const kind of ['http-01', 'tls-alpn-01'] as const) {
  describe(`ACME in a Redis cluster, ${kind} validated through the relay that did not order`, { skip: PEBBLE_SKIP || REDIS_SKIP }, () => {
    let dir: string
    let redis: RedisServer
    let pebble: Pebble
    let upstream: Upstream
    let intermediate: string
    let a: Relay
    let b: Relay
    const relays: Relay[] = []
    const agents: Agent[] = []
    const logs: LogLine[] = []
    const linesOf = (relay: string, msg: string, host?: string): LogLine[] =>
      logs.filter((l) => l.relay === relay && l.msg === msg && (host === undefined || l.fields.host === host))
    const issuedBy = (der: Buffer): boolean => new X509Certificate(der).checkIssued(new X509Certificate(intermediate))

    const relay = async (label: string, ports: { httpPort: number; httpsPort: number }, extra: Partial<RelayOptions> = {}): Promise<Relay> => {
      const r = await startRelay({
        host: '127.0.0.1',
        ...ports,
        domain: DOMAIN,
        authtokens: [TOKEN_1, TOKEN_2],
        stateDir: join(dir, label),
        cluster: { redis: redis.url, secret: SECRET },
        customDomains: true,
        dnsServer: pebble.dnsServer,
        acme: { email: 'ops@acme.test', directoryUrl: pebble.directoryUrl, directoryCa: pebble.listenerCa, handshakeWait: 120_000, challenges: [kind] },
        log: (_level, msg, fields = {}) => void logs.push({ relay: label, msg, fields }),
        ...extra,
      })
      relays.push(r)
      return r
    }
    const agent = async (r: Relay, token: string, publicName: string, publicHost?: string): Promise<Agent> => {
      const started = await startAgent({ relay: r.httpUrl!, authtoken: token, endpoints: [{ upstream: upstream.url, publicName, ...(publicHost ? { publicHost } : {}) }] })
      agents.push(started)
      return started
    }

    before(async () => {
      dir = tempDir('gw-cluster-acme-')
      redis = await startRedis()
      const prepared = await preparePebble({ dir })
      const [bHttp, bHttps] = prepared.relayPorts
      pebble = await prepared.start({ httpPort: bHttp, tlsPort: bHttps })
      intermediate = await pebble.intermediate()
      upstream = await startUpstream((req, res) => res.end(`upstream saw ${req.headers.host} ${req.url}`))
      a = await relay('a', { httpPort: 0, httpsPort: 0 })
      b = await relay('b', { httpPort: bHttp, httpsPort: bHttps })
      assert.notEqual(a.httpPort, b.httpPort)
      assert.notEqual(a.httpsPort, b.httpsPort)
    })

    after(async () => {
      await Promise.all(agents.map((x) => x.close()))
      await Promise.all(relays.map((r) => r.close()))
      await pebble?.close()
      await upstream?.close()
      await redis?.close()
      rmSync(dir, { recursive: true, force: true })
    })

    it('relay A orders for its agent, pebble validates through relay B, and relay B serves the certificate without an order of its own', async () => {
      await agent(a, TOKEN_1, 'app')
      const fromA = await served(a.httpsPort!, `app.${DOMAIN}`)
      assert.ok(issuedBy(fromA), 'relay A serves a certificate signed by pebble\'s intermediate')
      assert.equal(linesOf('a', 'acme: certificate issued', `app.${DOMAIN}`).length, 1, 'relay A ordered it')
      assert.equal(linesOf('a', 'acme: certificate issued', `app.${DOMAIN}`)[0]!.fields.challenge, kind)
      // Relay B heard of it (Redis pub/sub) and took it: no order there.
      await waitFor(() => linesOf('b', 'acme: certificate taken from the cluster', `app.${DOMAIN}`).length === 1, 10_000, 'relay B took the certificate')
      const fromB = await served(b.httpsPort!, `app.${DOMAIN}`)
      assert.ok(issuedBy(fromB), 'relay B serves a certificate signed by pebble\'s intermediate')
      assert.equal(new X509Certificate(fromB).serialNumber, new X509Certificate(fromA).serialNumber, 'the one certificate relay A got')
      assert.equal(linesOf('b', 'acme: certificate issued').length, 0, 'relay B ordered nothing')
      assert.ok(redis.cli('hkeys', '{gw}:acme:certs').split('\n').includes(`app.${DOMAIN}`))
      assert.equal(redis.cli('keys', '{gw}:acme:ch:*'), '', 'the challenge left Redis once validated')
    })

    it('handshakes at both relays at once for a name claimed through A: one order in the cluster, and both serve its certificate', async () => {
      await agent(a, TOKEN_1, 'twice')
      // Relay B has not heard of "twice" (claimed through A after B read the owners): it asks Redis.
      const [fromA, fromB] = await Promise.all([served(a.httpsPort!, `twice.${DOMAIN}`), served(b.httpsPort!, `twice.${DOMAIN}`)])
      assert.ok(issuedBy(fromA) && issuedBy(fromB))
      assert.equal(new X509Certificate(fromA).serialNumber, new X509Certificate(fromB).serialNumber)
      const orders = [...linesOf('a', 'acme: certificate issued', `twice.${DOMAIN}`), ...linesOf('b', 'acme: certificate issued', `twice.${DOMAIN}`)]
      assert.equal(orders.length, 1, 'the order lock let one relay order')
      assert.equal(redis.cli('keys', '{gw}:acme:lock:*'), '', 'the lock is released')
    })

    it('a relay that joins the cluster with an empty state directory serves every certificate at once, without an order', async () => {
      const c = await relay('c', { httpPort: 0, httpsPort: 0 })
      assert.ok(issuedBy(await served(c.httpsPort!, `app.${DOMAIN}`)))
      assert.equal(linesOf('c', 'acme: certificate issued').length, 0)
      assert.equal(linesOf('c', 'acme: certificate taken from the cluster').length, 2)
    })

    it('the cluster\'s relays share one ACME account key', () => {
      assert.match(redis.cli('get', '{gw}:acme:account'), /BEGIN (EC )?PRIVATE KEY/)
    })

    it('a custom domain held through relay A is served through relay B (requests and its certificate) and refused to another token through relay B', async () => {
      const host = 'shop.customer.test'
      await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: `${DOMAIN}.` })
      await agent(a, TOKEN_1, 'shop', host)
      // Relay B did not know the host (claimed after it started): it asks Redis, then forwards to A.
      const res = await request(`${b.httpUrl}/through-b`, { headers: { host } })
      assert.equal(res.statusCode, 200)
      assert.equal(await res.body.text(), `upstream saw ${host} /through-b`)
      // The order starts when relay A verified the host; pebble validates through B.
      const cert = await served(b.httpsPort!, host)
      assert.ok(issuedBy(cert), 'relay B serves pebble\'s certificate for the custom host')
      assert.match(new X509Certificate(cert).subjectAltName ?? '', /DNS:shop\.customer\.test/)
      await assert.rejects(agent(b, TOKEN_2, 'shop', host), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GW_ERR_NAME_TAKEN')
        assert.match(err.message, /shop\.customer\.test belongs to another authtoken on this relay \(or another relay of its cluster\)/)
        return true
      })
    })
  })
}

describe('ACME in a Redis cluster: renewals once, and one hourly budget for every relay', { skip: PEBBLE_SKIP || REDIS_SKIP }, () => {
  it('with a budget of 2 orders an hour: relay A orders, one relay renews (certificates of 12 s), and relay B is then refused a new order', async () => {
    const dir = tempDir('gw-cluster-acme-budget-')
    const redis = await startRedis()
    const prepared = await preparePebble({ dir, validitySeconds: 12 })
    const [bHttp, bHttps] = prepared.relayPorts
    const pebble = await prepared.start({ httpPort: bHttp, tlsPort: bHttps })
    const intermediate = new X509Certificate(await pebble.intermediate())
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    const logs: LogLine[] = []
    const relays: Relay[] = []
    const agents: Agent[] = []
    const start = async (label: string, ports: { httpPort: number; httpsPort: number }): Promise<Relay> => {
      const r = await startRelay({
        host: '127.0.0.1', ...ports, domain: DOMAIN, authtokens: [TOKEN_1], stateDir: join(dir, label),
        cluster: { redis: redis.url, secret: SECRET },
        acme: { email: 'ops@acme.test', directoryUrl: pebble.directoryUrl, directoryCa: pebble.listenerCa, handshakeWait: 60_000, challenges: ['http-01'], ordersPerHour: 2, renewCheckInterval: 250 },
        log: (_level, msg, fields = {}) => void logs.push({ relay: label, msg, fields }),
      })
      relays.push(r)
      return r
    }
    const issued = (): LogLine[] => logs.filter((l) => l.msg === 'acme: certificate issued')
    try {
      const a = await start('a', { httpPort: 0, httpsPort: 0 })
      const b = await start('b', { httpPort: bHttp, httpsPort: bHttps })
      agents.push(await startAgent({ relay: a.httpUrl!, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: 'renew' }] }))
      const first = new X509Certificate(await served(a.httpsPort!, `renew.${DOMAIN}`))
      assert.ok(first.checkIssued(intermediate))
      // Both relays check every 250 ms; a third of 12 s before expiry, one of them renews.
      await waitFor(() => issued().length >= 2, 60_000, 'a renewal')
      const renewed = issued()[1]!
      assert.equal(renewed.fields.host, `renew.${DOMAIN}`)
      // The other relay takes the renewed certificate from the cluster.
      const other = renewed.relay === 'a' ? 'b' : 'a'
      await waitFor(() => logs.some((l) => l.relay === other && l.msg === 'acme: certificate taken from the cluster' && l.fields.not_after === renewed.fields.not_after), 10_000, 'the renewed certificate at the other relay')
      const second = new X509Certificate(await served((other === 'a' ? a : b).httpsPort!, `renew.${DOMAIN}`))
      assert.ok(second.checkIssued(intermediate))
      assert.notEqual(second.serialNumber, first.serialNumber)
      // The budget (2 an hour) is the cluster's: relay B, which ordered at most one of them, is refused a new name.
      agents.push(await startAgent({ relay: a.httpUrl!, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: 'late' }] }))
      const late = new X509Certificate(await served(b.httpsPort!, `late.${DOMAIN}`))
      assert.ok(!late.checkIssued(intermediate), 'the default certificate, not an order')
      assert.ok(logs.some((l) => l.relay === 'b' && l.fields.code === 'GW_ERR_ACME_RATE_LIMITED' && l.fields.host === `late.${DOMAIN}`
        && /2 orders in the last hour in the cluster/.test(String(l.fields.error))), JSON.stringify(logs.filter((l) => l.fields.code === 'GW_ERR_ACME_RATE_LIMITED')))
      assert.equal(issued().length, 2, `one order and one renewal in the cluster: ${JSON.stringify(issued())}`)
    } finally {
      await Promise.all(agents.map((x) => x.close()))
      await Promise.all(relays.map((r) => r.close()))
      await pebble.close()
      await upstream.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
