/**
 * The relay's ACME certificates against a real ACME CA: pebble, with pebble-challtestsrv
 * as the DNS it resolves through (every name is 127.0.0.1). Pebble validates HTTP-01 on
 * the relay's HTTP port and TLS-ALPN-01 on its HTTPS port, DNS-01 through the TXT records
 * the relay's hook sets in challtestsrv. Certificates are read by real TLS clients
 * (node's tls.connect with a server name, and curl --resolve) and checked against
 * pebble's root, fetched from its management API.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type PeerCertificate } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { get as httpGet } from 'node:http'
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { startRelay, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { request } from 'undici'
import { freePorts, preparePebble, PEBBLE_SKIP, type Pebble } from '../helpers/pebble.js'
import { spawnRelay, startUpstream, tempDir, waitFor, type SpawnedRelay, type Upstream } from '../helpers/stack.js'

const DOMAIN = 'acme.test'
const HAVE_CURL = !(await new Promise<boolean>((resolve) => execFile('curl', ['--version'], (err) => resolve(Boolean(err)))))

interface LogLine {
  at: number
  level: string
  msg: string
  fields: Record<string, unknown>
}

interface AcmeStack {
  relay: Relay
  pebble: Pebble
  upstream: Upstream
  agents: Agent[]
  logs: LogLine[]
  dir: string
  root: string
  addAgent(publicName: string): Promise<Agent>
  close(): Promise<void>
}

async function startAcmeStack(
  acme: Partial<NonNullable<RelayOptions['acme']>> | ((challtestsrvUrl: string) => Partial<NonNullable<RelayOptions['acme']>>) = {},
  options: { validitySeconds?: number; validateNowhere?: boolean } = {},
): Promise<AcmeStack> {
  const dir = tempDir('gw-acme-')
  const prepared = await preparePebble({ dir, ...(options.validitySeconds ? { validitySeconds: options.validitySeconds } : {}) })
  // Pebble first (on the relay's ports, picked with its own), so an order made at the relay's start finds it up.
  const [httpPort, httpsPort] = prepared.relayPorts
  // validateNowhere: pebble validates on ports nobody listens on, so every order fails.
  const [deadHttp, deadTls] = options.validateNowhere ? await freePorts(2) : [httpPort, httpsPort]
  const pebble = await prepared.start({ httpPort: deadHttp!, tlsPort: deadTls! })
  const logs: LogLine[] = []
  const upstream = await startUpstream((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(`upstream saw ${req.headers.host} ${req.url}`)
  })
  const relay = await startRelay({
    host: '127.0.0.1',
    httpPort,
    httpsPort,
    domain: DOMAIN,
    stateDir: join(dir, 'state'),
    metricsAddr: '127.0.0.1:0',
    acme: {
      email: 'ops@acme.test',
      directoryUrl: prepared.directoryUrl,
      directoryCa: prepared.listenerCa,
      handshakeWait: 60_000,
      ...(typeof acme === 'function' ? acme(prepared.challtestsrvUrl) : acme),
    },
    log: (level, msg, fields = {}) => void logs.push({ at: Date.now(), level, msg, fields }),
  })
  const agents: Agent[] = []
  const root = await pebble.root()
  return {
    relay,
    pebble,
    upstream,
    agents,
    logs,
    dir,
    root,
    addAgent: async (publicName) => {
      const agent = await startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, publicName }] })
      agents.push(agent)
      return agent
    },
    close: async () => {
      for (const agent of agents) await agent.close()
      await relay.close()
      await pebble.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

interface Served {
  cert: PeerCertificate
  pem: string
  authorized: boolean
  authorizationError: string | undefined
}

/** The certificate the relay's HTTPS port serves for `servername`, checked against `ca`. */
function served(port: number, servername: string, ca: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = socket.getPeerCertificate(true)
      const pem = `-----BEGIN CERTIFICATE-----\n${cert.raw.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`
      resolve({ cert, pem, authorized: socket.authorized, authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined })
      socket.end()
    })
    socket.setTimeout(90_000, () => socket.destroy(new Error(`no TLS handshake for ${servername}`)))
    socket.on('error', reject)
  })
}

function issuedBy(pem: string, intermediatePem: string): boolean {
  return new X509Certificate(pem).checkIssued(new X509Certificate(intermediatePem))
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '60', ...args], (err, stdout, stderr) => resolve({ code: err ? Number(err.code) || 1 : 0, stdout, stderr }))
  })
}

const issuedLines = (logs: LogLine[]): LogLine[] => logs.filter((l) => l.msg === 'acme: certificate issued')

/** `gw_relay_acme_events_total` as `event/result` → count, scraped from the relay and read by a Prometheus text parser. */
async function acmeEvents(relay: Relay): Promise<Record<string, number>> {
  const text = await (await request(relay.metricsUrl!)).body.text()
  const family = (parsePrometheusTextFormat(text) as Array<{ name: string; metrics: Array<{ value: string; labels?: Record<string, string> }> }>)
    .find((f) => f.name === 'gw_relay_acme_events_total')
  assert.ok(family, 'gw_relay_acme_events_total is exported')
  return Object.fromEntries(family.metrics.map((m) => [`${m.labels!.event}/${m.labels!.result}`, Number(m.value)]))
}

describe('relay ACME certificates from pebble', { skip: PEBBLE_SKIP }, () => {
  describe('HTTP-01', () => {
    let stack: AcmeStack
    before(async () => {
      stack = await startAcmeStack({ challenges: ['http-01'] })
      await stack.addAgent('app')
    })
    after(() => stack.close())

    it('issues a certificate for a held name on its first handshake and serves it through SNI', async () => {
      const got = await served(stack.relay.httpsPort!, `app.${DOMAIN}`, stack.root)
      assert.equal(got.authorized, true, `not trusted by pebble's root: ${got.authorizationError}`)
      assert.ok(issuedBy(got.pem, await stack.pebble.intermediate()), 'the leaf is signed by pebble\'s intermediate')
      assert.match(got.cert.subjectaltname ?? '', new RegExp(`DNS:app\\.${DOMAIN.replace('.', '\\.')}`))
      const lines = issuedLines(stack.logs)
      assert.equal(lines.length, 1)
      assert.equal(lines[0]!.fields.challenge, 'http-01')
      assert.equal(lines[0]!.fields.host, `app.${DOMAIN}`)
      assert.ok(existsSync(join(stack.dir, 'state', 'acme', 'certs', `app.${DOMAIN}.pem`)))
    })

    it('serves the tunnel over that certificate to curl, which trusts only pebble\'s root', { skip: HAVE_CURL ? false : 'curl is not installed' }, async () => {
      const rootPath = join(stack.dir, 'pebble-root.pem')
      writeFileSync(rootPath, stack.root)
      const port = stack.relay.httpsPort!
      const res = await curl(['--cacert', rootPath, '--resolve', `app.${DOMAIN}:${port}:127.0.0.1`, `https://app.${DOMAIN}:${port}/hello`])
      assert.equal(res.code, 0, res.stderr)
      assert.equal(res.stdout, `upstream saw app.${DOMAIN}:${port} /hello`)
      assert.equal(issuedLines(stack.logs).length, 1, 'the second handshake reuses the certificate')
    })

    it('routes an unknown ACME token to the tunnel as an ordinary request', async () => {
      const body = await new Promise<string>((resolve, reject) => {
        httpGet({ host: '127.0.0.1', port: stack.relay.httpPort!, path: '/.well-known/acme-challenge/not-a-token', headers: { host: `app.${DOMAIN}` } }, (res) => {
          let data = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (data += c))
          res.on('end', () => resolve(data))
        }).on('error', reject)
      })
      assert.equal(body, `upstream saw app.${DOMAIN} /.well-known/acme-challenge/not-a-token`)
    })

    it('gives a host no agent holds the default certificate and orders nothing', async () => {
      const got = await served(stack.relay.httpsPort!, `nobody.${DOMAIN}`, stack.root)
      assert.equal(got.authorized, false)
      assert.ok(!issuedBy(got.pem, await stack.pebble.intermediate()))
      assert.equal(got.cert.issuer.CN, `gw relay CA (${DOMAIN})`)
      assert.ok(stack.logs.some((l) => l.fields.code === 'GW_ERR_ACME_NOT_HELD' && l.fields.host === `nobody.${DOMAIN}`))
      assert.equal(issuedLines(stack.logs).length, 1)
      assert.ok(!stack.pebble.log().includes(`nobody.${DOMAIN}`), 'pebble never heard of the name')
      assert.ok(!existsSync(join(stack.dir, 'state', 'acme', 'certs', `nobody.${DOMAIN}.pem`)))
    })

    it('keeps certificates across a restart: a new relay on the state directory serves the stored one without an order', async () => {
      const first = await served(stack.relay.httpsPort!, `app.${DOMAIN}`, stack.root)
      const logs: LogLine[] = []
      const again = await startRelay({
        host: '127.0.0.1',
        httpPort: 0,
        httpsPort: 0,
        domain: DOMAIN,
        stateDir: join(stack.dir, 'state'),
        acme: { email: 'ops@acme.test', directoryUrl: stack.pebble.directoryUrl, directoryCa: stack.pebble.listenerCa },
        log: (level, msg, fields = {}) => void logs.push({ at: Date.now(), level, msg, fields }),
      })
      try {
        const got = await served(again.httpsPort!, `app.${DOMAIN}`, stack.root)
        assert.equal(got.authorized, true)
        assert.equal(got.cert.serialNumber, first.cert.serialNumber)
        assert.equal(issuedLines(logs).length, 0)
      } finally {
        await again.close()
      }
    })
  })

  describe('TLS-ALPN-01', () => {
    let stack: AcmeStack
    before(async () => {
      stack = await startAcmeStack({ challenges: ['tls-alpn-01'] })
      await stack.addAgent('alpn')
    })
    after(() => stack.close())

    it('answers the validation on the HTTPS port and serves the issued certificate', async () => {
      const got = await served(stack.relay.httpsPort!, `alpn.${DOMAIN}`, stack.root)
      assert.equal(got.authorized, true, got.authorizationError)
      assert.ok(issuedBy(got.pem, await stack.pebble.intermediate()))
      const lines = issuedLines(stack.logs)
      assert.equal(lines.length, 1)
      assert.equal(lines[0]!.fields.challenge, 'tls-alpn-01')
      // The relay's own host is always allowed a certificate (agents connect there).
      const own = await served(stack.relay.httpsPort!, DOMAIN, stack.root)
      assert.equal(own.authorized, true, own.authorizationError)
    })

    it('reads a ClientHello that arrives one byte at a time, and closes on bytes that are not TLS', async () => {
      // A proxy that dribbles the client's first 700 bytes to the relay one per write.
      const proxy = createNetServer((client) => {
        const upstream = netConnect(stack.relay.httpsPort!, '127.0.0.1')
        upstream.setNoDelay(true)
        let sent = 0
        const queue: Buffer[] = []
        let draining = false
        const drain = (): void => {
          if (draining) return
          draining = true
          const step = (): void => {
            const chunk = queue.shift()
            if (!chunk) return void (draining = false)
            if (sent < 700 && chunk.length > 1) {
              queue.unshift(chunk.subarray(1))
              upstream.write(chunk.subarray(0, 1))
              sent++
            } else {
              upstream.write(chunk)
              sent += chunk.length
            }
            setTimeout(step, 1)
          }
          step()
        }
        client.on('data', (d: Buffer) => {
          queue.push(d)
          drain()
        })
        upstream.pipe(client)
        client.on('error', () => upstream.destroy())
        upstream.on('error', () => client.destroy())
        client.on('close', () => upstream.destroy())
      })
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
      try {
        const got = await served((proxy.address() as AddressInfo).port, `alpn.${DOMAIN}`, stack.root)
        assert.equal(got.authorized, true, got.authorizationError)
        // Not TLS at all: the TLS server refuses it and closes; the relay carries on.
        const closed = await new Promise<string>((resolve) => {
          const raw = netConnect(stack.relay.httpsPort!, '127.0.0.1', () => raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
          raw.on('data', () => {})
          raw.on('error', () => {})
          raw.on('close', () => resolve('closed'))
        })
        assert.equal(closed, 'closed')
        assert.equal((await served(stack.relay.httpsPort!, `alpn.${DOMAIN}`, stack.root)).authorized, true)
      } finally {
        await new Promise((resolve) => proxy.close(resolve))
      }
    })

    it('still serves ordinary TLS to clients after the challenge (the ClientHello peek passes bytes intact)', async () => {
      const res = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: stack.relay.httpsPort!, servername: `alpn.${DOMAIN}`, ca: stack.root }, () => {
          socket.write(`GET /x HTTP/1.1\r\nHost: alpn.${DOMAIN}\r\nConnection: close\r\n\r\n`)
        })
        let data = ''
        socket.setEncoding('utf8')
        socket.on('data', (c: string) => (data += c))
        socket.on('end', () => resolve(data))
        socket.on('error', reject)
      })
      assert.match(res, /^HTTP\/1\.1 200/)
      assert.ok(res.includes(`upstream saw alpn.${DOMAIN} /x`), res)
    })
  })

  describe('DNS-01 wildcard through --acme-dns-hook', () => {
    let stack: AcmeStack
    let hookLog: string
    before(async () => {
      const dir = tempDir('gw-acme-hook-')
      hookLog = join(dir, 'calls.log')
      const hook = join(dir, 'dns-hook.sh')
      // A real hook: it publishes the TXT record in pebble-challtestsrv, the DNS pebble asks.
      writeFileSync(hook, `#!/bin/sh
set -e
CHALLTESTSRV="$1"; shift
echo "$1 $2 $3 env=$GW_ACME_DNS_ACTION,$GW_ACME_DNS_NAME,$GW_ACME_DNS_VALUE,$GW_ACME_DNS_DOMAIN" >> "${hookLog}"
case "$1" in
  set) curl -sf -X POST -d "{\\"host\\":\\"$2.\\",\\"value\\":\\"$3\\"}" "$CHALLTESTSRV/set-txt" ;;
  clear) curl -sf -X POST -d "{\\"host\\":\\"$2.\\"}" "$CHALLTESTSRV/clear-txt" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
`)
      chmodSync(hook, 0o755)
      stack = await startAcmeStack((challtestsrv) => {
        // The hook is a command run without a shell; a wrapper passes challtestsrv's address first.
        const wrapper = join(dir, 'hook')
        writeFileSync(wrapper, `#!/bin/sh\nexec "${hook}" "${challtestsrv}" "$@"\n`)
        chmodSync(wrapper, 0o755)
        return { dnsHook: wrapper }
      })
      await waitFor(() => issuedLines(stack.logs).length > 0 || stack.logs.some((l) => l.msg === 'acme: order failed'), 90_000, 'the wildcard order')
    })
    after(() => stack.close())

    it('orders *.domain and the domain at start, and serves it for every name under the domain', async () => {
      const failed = stack.logs.find((l) => l.msg === 'acme: order failed')
      assert.equal(failed, undefined, JSON.stringify(failed?.fields))
      const line = issuedLines(stack.logs)[0]!
      assert.equal(line.fields.challenge, 'dns-01')
      assert.deepEqual(line.fields.names, [`*.${DOMAIN}`, DOMAIN])
      for (const name of [`anything.${DOMAIN}`, DOMAIN]) {
        const got = await served(stack.relay.httpsPort!, name, stack.root)
        assert.equal(got.authorized, true, `${name}: ${got.authorizationError}`)
        assert.match(got.cert.subjectaltname ?? '', /DNS:\*\.acme\.test/)
      }
      assert.equal(issuedLines(stack.logs).length, 1, 'one wildcard for all names')
    })

    it('called the hook with set then clear, the record name and value as arguments and in the environment', () => {
      const calls = readFileSync(hookLog, 'utf8').trim().split('\n')
      assert.equal(calls.length, 4, calls.join('\n'))
      const sets = calls.filter((c) => c.startsWith('set '))
      assert.equal(sets.length, 2)
      for (const call of calls) {
        const m = /^(set|clear) (\S+) (\S+) env=(set|clear),(\S+),(\S+),(\S+)$/.exec(call)
        assert.ok(m, call)
        assert.equal(m[2], `_acme-challenge.${DOMAIN}`)
        assert.equal(m[4], m[1])
        assert.equal(m[5], m[2])
        assert.equal(m[6], m[3])
        assert.equal(m[7], DOMAIN)
      }
      // Each value is cleared after its validation, before the next is set.
      assert.deepEqual(calls.map((c) => c.split(' ')[0]), ['set', 'clear', 'set', 'clear'])
    })
  })

  describe('limits and renewal', () => {
    it('orders at most ordersPerHour; a second held name waits on the default certificate', async () => {
      const stack = await startAcmeStack({ ordersPerHour: 1 })
      try {
        await stack.addAgent('one')
        await stack.addAgent('two')
        const one = await served(stack.relay.httpsPort!, `one.${DOMAIN}`, stack.root)
        assert.equal(one.authorized, true, one.authorizationError)
        const two = await served(stack.relay.httpsPort!, `two.${DOMAIN}`, stack.root)
        assert.equal(two.authorized, false)
        assert.ok(stack.logs.some((l) => l.fields.code === 'GW_ERR_ACME_RATE_LIMITED' && l.fields.host === `two.${DOMAIN}`))
        assert.equal(issuedLines(stack.logs).length, 1)
        const events = await acmeEvents(stack.relay)
        assert.equal(events['order/ok'], 1, JSON.stringify(events))
        assert.ok((events['rate_limited/error'] ?? 0) >= 1, JSON.stringify(events))
        assert.equal(events['order/error'], undefined, JSON.stringify(events))
      } finally {
        await stack.close()
      }
    })

    it('counts a failed order in gw_relay_acme_events_total: pebble cannot reach the relay to validate', async () => {
      const stack = await startAcmeStack({ challenges: ['http-01'], failureBackoff: 600_000 }, { validateNowhere: true })
      try {
        await stack.addAgent('fails')
        const got = await served(stack.relay.httpsPort!, `fails.${DOMAIN}`, stack.root)
        assert.equal(got.authorized, false, 'the default certificate, not one from pebble')
        await waitFor(() => stack.logs.some((l) => l.msg === 'acme: order failed'), 60_000, 'the failed order')
        const events = await acmeEvents(stack.relay)
        assert.equal(events['order/error'], 1, JSON.stringify(events))
        assert.equal(events['order/ok'], undefined, JSON.stringify(events))
      } finally {
        await stack.close()
      }
    })

    it('renews a certificate before it expires and serves the new one without a restart', async () => {
      const stack = await startAcmeStack({ renewCheckInterval: 250 }, { validitySeconds: 12 })
      try {
        await stack.addAgent('renew')
        const first = await served(stack.relay.httpsPort!, `renew.${DOMAIN}`, stack.root)
        assert.equal(first.authorized, true, first.authorizationError)
        let second: Served | undefined
        await waitFor(async () => {
          second = await served(stack.relay.httpsPort!, `renew.${DOMAIN}`, stack.root)
          return second.cert.serialNumber !== first.cert.serialNumber
        }, 60_000, 'a renewed certificate')
        assert.equal(second!.authorized, true, second!.authorizationError)
        assert.ok(issuedBy(second!.pem, await stack.pebble.intermediate()))
        const lines = issuedLines(stack.logs)
        assert.ok(lines.length >= 2)
        // Renewed before the first one expired (with a third of its lifetime left, give or take the order's time).
        assert.ok(lines[1]!.at < Date.parse(first.cert.valid_to), `renewed at ${new Date(lines[1]!.at).toISOString()}, first expired ${first.cert.valid_to}`)
        assert.ok(Date.parse(second!.cert.valid_from) >= Date.parse(first.cert.valid_from))
        const events = await acmeEvents(stack.relay)
        assert.equal(events['order/ok'], 1, JSON.stringify(events))
        assert.ok((events['renewal/ok'] ?? 0) >= 1, JSON.stringify(events))
      } finally {
        await stack.close()
      }
    })
  })

  it('gw relay --acme-email --acme-directory --acme-ca-file --acme-challenge gets a certificate from that directory', async () => {
    const dir = tempDir('gw-acme-cli-')
    const prepared = await preparePebble({ dir })
    const [httpPort, httpsPort] = prepared.relayPorts
    const pebble = await prepared.start({ httpPort, tlsPort: httpsPort })
    const caFile = join(dir, 'pebble-listener.pem')
    writeFileSync(caFile, prepared.listenerCa)
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    let relay: SpawnedRelay | undefined
    let agent: Agent | undefined
    try {
      relay = await spawnRelay({
        workers: null, domain: DOMAIN, httpPort, httpsPort, stateDir: join(dir, 'state'),
        args: ['--acme-email', 'ops@acme.test', '--acme-directory', prepared.directoryUrl, '--acme-ca-file', caFile, '--acme-challenge', 'tls-alpn-01'],
      })
      agent = await startAgent({ relay: `http://127.0.0.1:${httpPort}`, endpoints: [{ upstream: upstream.url, publicName: 'cli' }] })
      const root = await pebble.root()
      // The CLI's handshake wait is 10 s; a handshake that came before the order ended gets
      // the default certificate, and the next one the issued certificate.
      let got: Served | undefined
      await waitFor(async () => (got = await served(httpsPort, `cli.${DOMAIN}`, root)).authorized, 90_000, 'an issued certificate')
      assert.ok(issuedBy(got!.pem, await pebble.intermediate()))
      assert.ok(relay.lines.some((l) => l.includes('acme: certificate issued') && l.includes('tls-alpn-01')), relay.lines.join('\n'))
    } finally {
      await agent?.close()
      await relay?.stop()
      await pebble.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
