/**
 * `conn.tls.*` as ngrok documents it (traffic-policy/variables/conn.tls): the relay
 * passes the client's TLS connection on in the request head, and the policy reads it;
 * ngrok's enforce-TLS example through a real relay's https listener, with real TLS 1.2
 * and 1.3 clients.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { Agent as UndiciAgent, request } from 'undici'
import { startRelay } from '@gw/relay'
import { startAgent } from '@gw/cli/agent/agent'
import { compilePolicy } from '@gw/cli/policy/index'
import { startEchoUpstream } from './tunnel-stack.js'
import { fixture } from './ngrok-docs.js'
import { tempDir } from '../helpers/stack.js'

test('conn.tls.version, cipher_suite, sni, negotiated_alpn: ngrok\'s enforce-TLS example refuses TLS 1.2 (and plain http) and passes 1.3', async () => {
  const doc = JSON.parse(JSON.stringify(fixture('traffic-policy-examples-enforce-tls-11f338').policy)) as { on_http_request: unknown[] }
  doc.on_http_request.push({ actions: [{ type: 'add-headers', config: { headers: {
    'x-tls': '${conn.tls.version}|${conn.tls.cipher_suite}|${conn.tls.sni}|${conn.tls.negotiated_alpn}|${conn.tls.session_resumed}',
  } } }] })
  const upstream = await startEchoUpstream()
  const stateDir = tempDir('gw-conn-tls-')
  const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir })
  const agent = await startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, policy: compilePolicy(doc) }] })
  const host = `${agent.tunnels[0]!.publicName}.localhost`
  const get = async (maxVersion: 'TLSv1.2' | 'TLSv1.3') => {
    const dispatcher = new UndiciAgent({ connect: { rejectUnauthorized: false, servername: host, maxVersion, minVersion: 'TLSv1.2' } })
    try {
      const res = await request(`${relay.httpsUrl}/`, { headers: { host }, dispatcher })
      return { status: res.statusCode, text: await res.body.text() }
    } finally {
      await dispatcher.close()
    }
  }
  try {
    const old = await get('TLSv1.2')
    assert.equal(old.status, 401)
    assert.equal(old.text, 'Unauthorized: TLS version too old')
    const plain = await request(`${relay.httpUrl}/`, { headers: { host } })
    assert.equal(plain.statusCode, 401, 'plain http has no TLS version, so the example refuses it too')
    await plain.body.arrayBuffer()
    const modern = await get('TLSv1.3')
    assert.equal(modern.status, 200)
    const [version, cipher, sni, alpn, resumed] = (JSON.parse(modern.text) as { headers: Record<string, string> }).headers['x-tls']!.split('|')
    assert.equal(version, '1.3')
    assert.match(cipher!, /^TLS_(AES_\d+_GCM_SHA\d+|CHACHA20_POLY1305_SHA256)$/)
    assert.equal(sni, host)
    assert.ok(alpn === '' || alpn === 'http/1.1', alpn)
    assert.equal(resumed, 'false')
  } finally {
    await agent.close()
    await relay.close()
    await upstream.close()
    rmSync(stateDir, { recursive: true, force: true })
  }
})
