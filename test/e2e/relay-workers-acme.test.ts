/**
 * `gw relay --workers 2 --acme-email …` without Redis: the real binary, two workers behind
 * one listener sharing ACME through the primary process, against pebble (validating on
 * the relay's ports, so its request reaches whichever worker the primary hands it to).
 * One worker orders; the other takes the certificate from the primary and serves it too.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { request } from 'undici'
import { preparePebble, PEBBLE_SKIP } from '../helpers/pebble.js'
import { spawnGw, startUpstream, tempDir, waitFor } from '../helpers/stack.js'

const DOMAIN = 'acme.test'
const TOKEN_1 = 'workers-acme-token-1-0123456789'
const TOKEN_2 = 'workers-acme-token-2-0123456789'

/** The leaf certificate `port` serves for `servername` (DER), on a new connection. */
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

interface Line { msg: string; worker?: number; host?: string }

describe('gw relay --workers 2 with ACME and custom domains', { skip: PEBBLE_SKIP }, () => {
  it('one worker orders, pebble validates through the shared listener, and both workers serve the certificate; a custom host is served by both and refused to another token', async () => {
    const dir = tempDir('gw-workers-acme-')
    const prepared = await preparePebble({ dir })
    const [httpPort, httpsPort] = prepared.relayPorts
    const pebble = await prepared.start({ httpPort, tlsPort: httpsPort })
    const caFile = join(dir, 'pebble-listener.pem')
    writeFileSync(caFile, pebble.listenerCa)
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    const relay = spawnGw(['relay', '--domain', DOMAIN, '--host', '127.0.0.1', '--http-port', String(httpPort), '--https-port', String(httpsPort),
      '--state-dir', join(dir, 'state'), '--workers', '2', '--log-format', 'json',
      '--acme-email', 'ops@acme.test', '--acme-directory', pebble.directoryUrl, '--acme-ca-file', caFile, '--acme-challenge', 'http-01',
      '--custom-domains', '--dns-server', pebble.dnsServer, '--authtoken', TOKEN_1, '--authtoken', TOKEN_2])
    const agents: Agent[] = []
    const lines = (): Line[] => relay.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line)
    try {
      await waitFor(() => lines().filter((l) => l.msg === 'relay started').length === 2, 30_000, 'both workers started')
      const workers = new Set(lines().filter((l) => l.msg === 'relay started').map((l) => l.worker))
      assert.equal(workers.size, 2, 'two workers, not the old fallback to one')
      agents.push(await startAgent({ relay: `http://127.0.0.1:${httpPort}`, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: 'app' }] }))
      const intermediate = new X509Certificate(await pebble.intermediate())
      // New connections, handed to the workers in turn: every one gets pebble's certificate.
      const serials = new Set<string>()
      for (let i = 0; i < 8; i++) {
        const cert = new X509Certificate(await served(httpsPort, `app.${DOMAIN}`))
        assert.ok(cert.checkIssued(intermediate), `handshake ${i}: signed by pebble's intermediate`)
        serials.add(cert.serialNumber)
      }
      assert.equal(serials.size, 1, 'one certificate')
      const issued = lines().filter((l) => l.msg === 'acme: certificate issued' && l.host === `app.${DOMAIN}`)
      assert.equal(issued.length, 1, 'one order for the two workers')
      const taken = lines().filter((l) => l.msg === 'acme: certificate taken from the cluster' && l.host === `app.${DOMAIN}`)
      assert.equal(taken.length, 1, 'the other worker took it from the primary')
      assert.notEqual(taken[0]!.worker, issued[0]!.worker)

      // A custom host, claimed through one worker after both started: new connections through
      // either worker reach the agent (the other one asks the primary who owns the host).
      const host = 'shop.customer.test'
      await pebble.challtestsrv('/set-cname', { host: `${host}.`, target: `${DOMAIN}.` })
      agents.push(await startAgent({ relay: `http://127.0.0.1:${httpPort}`, authtoken: TOKEN_1, endpoints: [{ upstream: upstream.url, publicName: 'shop', publicHost: host }] }))
      const members = new Set<string>()
      for (let i = 0; i < 12; i++) {
        if (i % 3 === 2) {
          const health = await request(`http://127.0.0.1:${httpPort}/healthz`, { reset: true })
          const member = /Cluster member (relay-[0-9a-f]+)/.exec(await health.body.text())
          if (member) members.add(member[1]!)
          continue
        }
        const res = await request(`http://127.0.0.1:${httpPort}/c${i}`, { headers: { host }, reset: true })
        assert.equal(res.statusCode, 200, `request ${i}`)
        assert.equal(await res.body.text(), 'ok')
      }
      assert.equal(members.size, 2, 'new connections reach both workers')
      for (let i = 0; i < 4; i++) {
        assert.ok(new X509Certificate(await served(httpsPort, host)).checkIssued(intermediate), `custom host handshake ${i}`)
      }
      for (let i = 0; i < 2; i++) {
        await assert.rejects(startAgent({ relay: `http://127.0.0.1:${httpPort}`, authtoken: TOKEN_2, endpoints: [{ upstream: upstream.url, publicName: 'shop', publicHost: host }] }),
          (err: Error & { code?: string }) => err.code === 'GW_ERR_NAME_TAKEN')
      }
    } finally {
      await Promise.all(agents.map((a) => a.close()))
      relay.kill('SIGTERM')
      const code = await relay.exited
      await pebble.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
      assert.equal(code, 0, relay.stderr())
    }
  })
})
