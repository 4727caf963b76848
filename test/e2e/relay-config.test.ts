import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent as UndiciAgent, Pool, request } from 'undici'
import { generate } from 'selfsigned'
import { startRelay } from '@gw/relay'
import { startAgent } from '@gw/cli/agent/agent'
import { GwError } from '@gw/protocol'
import { freePort, spawnGw, spawnRelay, startStack, startUpstream, tempDir, waitFor, type SpawnedRelay } from '../helpers/stack.js'

describe('relay configuration', () => {
  it('serves HTTPS with the certificate given by --tls-cert/--tls-key', async () => {
    const dir = tempDir()
    const made = await generate([{ name: 'commonName', value: '*.tunnel.test' }], {
      keyType: 'ec', curve: 'P-256', algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: '*.tunnel.test' }, { type: 2, value: 'tunnel.test' }, { type: 7, ip: '127.0.0.1' }] }],
    })
    writeFileSync(join(dir, 'cert.pem'), made.cert)
    writeFileSync(join(dir, 'key.pem'), made.private)
    const upstream = await startUpstream((_req, res) => res.end('tls ok'))
    const relay = await startRelay({
      host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'tunnel.test', stateDir: dir,
      tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem'),
    })
    const agent = await startAgent({ relay: relay.httpsUrl!, relayCa: made.cert, endpoints: [{ upstream: upstream.url, publicName: 'app' }] })
    const client = new UndiciAgent({ connect: { ca: made.cert, servername: 'app.tunnel.test' } })
    try {
      assert.deepEqual(agent.tunnels[0]!.publicUrls, [`http://app.tunnel.test:${relay.httpPort}`, `https://app.tunnel.test:${relay.httpsPort}`])
      const res = await request(`${relay.httpsUrl}/`, { dispatcher: client, headers: { host: 'app.tunnel.test' } })
      assert.equal(await res.body.text(), 'tls ok')
      const peer = relay.caCertPem
      assert.equal(peer, readFileSync(join(dir, 'cert.pem'), 'utf8'))
    } finally {
      await client.close()
      await agent.close()
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('keeps its generated CA across restarts', async () => {
    const dir = tempDir()
    const first = await startRelay({ host: '127.0.0.1', httpPort: false, httpsPort: 0, domain: 'localhost', stateDir: dir })
    const ca = first.caCertPem
    await first.close()
    const second = await startRelay({ host: '127.0.0.1', httpPort: false, httpsPort: 0, domain: 'localhost', stateDir: dir })
    assert.equal(second.caCertPem, ca)
    assert.equal(second.caCertPath, join(dir, 'ca.pem'))
    await second.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('tells an agent which flag fixes an untrusted relay certificate', async () => {
    const dir = tempDir()
    const relay = await startRelay({ host: '127.0.0.1', httpPort: false, httpsPort: 0, domain: 'localhost', stateDir: dir })
    try {
      await assert.rejects(startAgent({ relay: relay.httpsUrl!, endpoints: [{ upstream: '9' }] }), (err: GwError) => {
        assert.equal(err.code, 'GW_ERR_RELAY_CERT_UNTRUSTED')
        assert.match(err.message, /--relay-ca/)
        return true
      })
    } finally {
      await relay.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('takes tokens from a tokens file (plain or sha256:) and from GW_RELAY_AUTHTOKENS', async () => {
    const dir = tempDir()
    const hashed = createHash('sha256').update('hashed-token').digest('hex')
    writeFileSync(join(dir, 'tokens'), `# relay tokens\nplain-token\nsha256:${hashed}\n`)
    const port = await freePort()
    let relay: SpawnedRelay | undefined
    try {
      relay = await spawnRelay({ workers: null, httpPort: port, stateDir: dir, args: ['--authtokens-file', join(dir, 'tokens')], env: { GW_RELAY_AUTHTOKENS: 'env-token-1, env-token-2' } })
      for (const token of ['plain-token', 'hashed-token', 'env-token-1', 'env-token-2']) {
        const agent = await startAgent({ relay: `http://127.0.0.1:${port}`, authtoken: token, endpoints: [{ upstream: '9' }] })
        await agent.close()
      }
      await assert.rejects(
        startAgent({ relay: `http://127.0.0.1:${port}`, authtoken: `sha256:${hashed}`, endpoints: [{ upstream: '9' }] }),
        (err: GwError) => err.code === 'GW_ERR_AUTH_INVALID',
      )
    } finally {
      await relay?.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses to start on 0.0.0.0 without tokens and exits non-zero with the fix', async () => {
    const dir = tempDir()
    const relay = spawnGw(['relay', '--domain', 'tunnel.test', '--host', '0.0.0.0', '--http-port', '0', '--https-port', '-1', '--state-dir', dir])
    const code = await relay.exited
    assert.notEqual(code, 0)
    assert.match(relay.stderr(), /refusing to listen on 0\.0\.0\.0 without authtokens/)
    assert.match(relay.stderr(), /GW_ERR_RELAY_NO_AUTHTOKENS/)
    rmSync(dir, { recursive: true, force: true })
  })
})

describe('heartbeats', () => {
  it('notices a relay that stopped answering within the heartbeat timeout', async () => {
    const dir = tempDir()
    const port = await freePort()
    // One relay process: SIGSTOP must freeze the process that answers heartbeats (with
    // --workers it would freeze only the primary).
    const relay = await spawnRelay({ httpPort: port, stateDir: dir })
    const agent = await startAgent({ relay: `http://127.0.0.1:${port}`, endpoints: [{ upstream: '9' }], heartbeatTimeout: 1500 })
    try {
      // A frozen process keeps its sockets open: only the heartbeat can tell.
      relay.child.kill('SIGSTOP')
      await waitFor(() => agent.status().status === 'reconnecting', 6000, 'the agent to notice the frozen relay')
    } finally {
      relay.child.kill('SIGCONT')
      await agent.close()
      await relay.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('heartbeats, the other way', () => {
  it('lets the relay notice an agent that stopped answering, and answer 502 for its name', async () => {
    const dir = tempDir()
    const config = tempDir()
    const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: dir, heartbeatTimeout: 1500 })
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    const agent = spawnGw(['http', upstream.url, '--relay', relay.httpUrl!, '--subdomain', 'frozen', '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'], {
      GW_CONFIG: join(config, 'gw.yml'),
    })
    const pool = new Pool(relay.httpUrl!)
    try {
      await agent.waitForLine((l) => l.includes('"started tunnel"'))
      assert.deepEqual(relay.onlineNames(), ['frozen'])
      agent.child.kill('SIGSTOP')
      await waitFor(() => relay.onlineNames().length === 0, 6000, 'the relay to drop the frozen agent')
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: 'frozen.localhost' } })
      assert.equal(res.statusCode, 502)
      assert.equal(res.headers['gw-error-code'], 'GW_ERR_AGENT_OFFLINE')
      await res.body.text()
    } finally {
      agent.child.kill('SIGCONT')
      agent.kill()
      await agent.exited
      await pool.close()
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
      rmSync(config, { recursive: true, force: true })
    }
  })
})

describe('Host header', () => {
  it('keeps the client Host by default and rewrites it with --host-header', async () => {
    const seen: string[] = []
    const stack = await startStack((req, res) => {
      seen.push(req.headers.host!)
      res.end('ok')
    })
    const rewriting = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: stack.upstream.url, hostHeader: 'rewrite' }] })
    const fixed = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: stack.upstream.url, hostHeader: 'example.internal' }] })
    const pool = new Pool(stack.httpOrigin)
    try {
      for (const name of [stack.name, rewriting.tunnels[0]!.publicName, fixed.tunnels[0]!.publicName]) {
        const res = await pool.request({ path: '/', method: 'GET', headers: { host: `${name}.localhost` } })
        await res.body.text()
      }
      assert.deepEqual(seen, [stack.host, `127.0.0.1:${stack.upstream.port}`, 'example.internal'])
    } finally {
      await pool.close()
      await rewriting.close()
      await fixed.close()
      await stack.close()
    }
  })
})
