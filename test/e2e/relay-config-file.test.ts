/**
 * `gw relay --config`: a real relay process reading a YAML file, reloading its tokens
 * when the file changes and on a real SIGHUP, with real agents; the per-token limits
 * enforced against real clients; and one-line errors for files that do not validate.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool, request } from 'undici'
import { loadRelayConfig, startRelay, type TokenEntry } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { AgentEvents } from '@gw/cli/agent/events'
import type { CodedError } from '@gw/protocol'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type SpawnedRelay } from '../helpers/stack.js'

const sha = (token: string): string => createHash('sha256').update(token).digest('hex')
const entry = (token: string, limits: TokenEntry['limits'] = {}, names: string[] = []): TokenEntry =>
  ({ label: token, digest: Buffer.from(sha(token), 'hex'), names, tcpPorts: [], limits })

async function refusal(promise: Promise<Agent>): Promise<string> {
  try {
    const agent = await promise
    await agent.close()
  } catch (err) {
    return (err as CodedError).code
  }
  return 'connected'
}

describe('relay config file (--config)', () => {
  it('validates with one line naming the key, the value and the fix', () => {
    const dir = tempDir()
    const check = (yaml: string, expected: RegExp, env: NodeJS.ProcessEnv = {}): void => {
      const path = join(dir, 'relay.yml')
      writeFileSync(path, yaml)
      assert.throws(() => loadRelayConfig(path, env), (err: CodedError) => {
        assert.equal(err.code, 'GW_ERR_RELAY_CONFIG')
        assert.ok(!err.message.includes('\n'), `one line: ${err.message}`)
        assert.match(err.message, expected)
        return true
      })
    }
    try {
      check('domain: a.test\nhttp_prot: 80\n', /relay\.yml: http_prot: 80 is not a known key; the keys here are domain, host, http_port/)
      check('domain: a.test\nlimits: { rps: fast }\n', /limits\.rps: "fast" is not a positive number; give requests per second, e\.g\. 50/)
      check('tokens:\n  - { label: a, token: s3cret }\n', /tokens\[0\]\.token: "\(hidden\)" is a token in clear[^]*give sha256:/)
      check('tokens:\n  - { label: a, env: GW_NOPE }\n', /tokens\[0\]\.env: "GW_NOPE" names an environment variable that is unset or empty/)
      check('tokens:\n  - { label: a, sha256: abc }\n', /tokens\[0\]\.sha256: "abc" is not 64 hex digits/)
      check(`tokens:\n  - { sha256: ${sha('a')}, names: [App_1] }\n`, /tokens\[0\]\.names\[0\]: "App_1" is not a valid name/)
      check(`tokens:\n  - { sha256: ${sha('a')}, names: [app] }\n  - { sha256: ${sha('b')}, names: [app] }\n`, /tokens\[1\]\.names: "app" is also reserved by tokens\[0\]/)
      check(`tokens:\n  - { sha256: ${sha('a')}, limits: { bandwidth: lots } }\n`, /tokens\[0\]\.limits\.bandwidth: "lots" is not a rate; give bytes per second, e\.g\. 1048576, 512KiB or 10MB/)
      check('http_port: 99999\n', /http_port: 99999 is not a port; give 0-65535, or off/)
      check('domain: [a\n', /relay\.yml:\d+:\d+: not valid YAML/)
      check('custom_domains: yes-please\n', /custom_domains: "yes-please" is not true or false/)
      check('custom_domains: true\ndns_server: 10.0.0.1:99999\n', /dns_server: "10\.0\.0\.1:99999" is not a DNS server address; give an IP address with an optional port/)
      check('drain_timeout: -5\n', /drain_timeout: -5 is not a whole number of seconds; give e\.g\. 30/)
      check('drain_timeout: soon\n', /drain_timeout: "soon" is not a whole number of seconds/)
      check('dns_server: 127.0.0.1\n', /dns_server: "127\.0\.0\.1" is only used to check custom domains; add custom_domains: true beside it/)
      // A good file: tokens by digest, environment and file, with their limits.
      writeFileSync(join(dir, 'carol.token'), 'carol-token\n')
      writeFileSync(join(dir, 'relay.yml'), [
        'domain: tunnel.test', 'https_port: off', 'limits: { streams: 10, bandwidth: 1MiB }', 'tokens:',
        `  - { label: alice, sha256: ${sha('alice-token')}, names: [app], tcp_ports: [20001], limits: { rps: 5 } }`,
        '  - { label: bob, env: GW_TOKEN_BOB }', `  - { label: carol, file: ${join(dir, 'carol.token')} }`, '',
      ].join('\n'))
      const config = loadRelayConfig(join(dir, 'relay.yml'), { GW_TOKEN_BOB: 'bob-token' })
      assert.equal(config.settings.domain, 'tunnel.test')
      assert.equal(config.settings.httpsPort, false)
      assert.deepEqual(config.limits, { streams: 10, bandwidth: 1024 * 1024 })
      assert.deepEqual(config.tokens.map((t) => [t.label, t.digest.toString('hex')]), [
        ['alice', sha('alice-token')], ['bob', sha('bob-token')], ['carol', sha('carol-token')]])
      assert.deepEqual(config.tokens[0]!.names, ['app'])
      assert.deepEqual(config.tokens[0]!.tcpPorts, [20001])
      assert.deepEqual(config.tokens[0]!.limits, { rps: 5 })
      writeFileSync(join(dir, 'custom.yml'), 'domain: tunnel.test\ncustom_domains: true\ndns_server: "[::1]:5353"\n')
      const custom = loadRelayConfig(join(dir, 'custom.yml'), {})
      assert.deepEqual([custom.settings.customDomains, custom.settings.dnsServer], [true, '[::1]:5353'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('gw relay exits non-zero on an invalid file, with the one-line reason', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'relay.yml'), 'domain: localhost\nlimits: { tunnels: -1 }\n')
    const relay = spawnGw(['relay', '--config', join(dir, 'relay.yml'), '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', dir])
    const code = await relay.exited
    rmSync(dir, { recursive: true, force: true })
    assert.notEqual(code, 0)
    assert.match(relay.stderr(), /limits\.tunnels: -1 is not a positive number; give the number of tunnels, e\.g\. 5/)
    assert.match(relay.stderr(), /GW_ERR_RELAY_CONFIG/)
  })

  it('reloads tokens when the file changes and on SIGHUP, without dropping connections', { timeout: 120_000 }, async (t) => {
    const dir = tempDir()
    const secrets = join(dir, 'secrets')
    mkdirSync(secrets)
    const upstream = await startUpstream((_req, res) => res.end('up'))
    const configPath = join(dir, 'relay.yml')
    const write = (tokens: string[]): void => writeFileSync(configPath, [
      'domain: localhost', 'host: 127.0.0.1', 'http_port: 0', 'https_port: off', `state_dir: ${join(dir, 'state')}`, 'tokens:', ...tokens, '',
    ].join('\n'))
    const alice = `  - { label: alice, sha256: ${sha('alice-token')}, names: [alice-app] }`
    const bob = '  - { label: bob, env: GW_TOKEN_BOB }'
    const carol = `  - { label: carol, file: ${join(secrets, 'carol.token')} }`
    writeFileSync(join(secrets, 'carol.token'), 'carol-token-1\n')
    write([alice, bob])
    // One relay process: the test counts its reload lines (each worker of --workers logs its own).
    let relay: SpawnedRelay | undefined
    const agents: Agent[] = []
    t.after(async () => {
      await Promise.all(agents.map((a) => a.close()))
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    relay = await spawnRelay({ config: configPath, env: { GW_TOKEN_BOB: 'bob-token' } })
    const relayUrl = relay.url
    const connect = (token: string, name?: string) => startAgent({ relay: relayUrl, authtoken: token, endpoints: [{ upstream: upstream.url, ...(name ? { publicName: name } : {}) }] })
    const get = async (name: string) => {
      const res = await request(`${relayUrl}/`, { headers: { host: `${name}.localhost` } })
      return { status: res.statusCode, body: await res.body.text() }
    }

    const a = await connect('alice-token', 'alice-app')
    const b = await connect('bob-token')
    agents.push(a, b)
    assert.equal(await refusal(connect('carol-token-1')), 'GW_ERR_AUTH_INVALID')
    assert.equal(await refusal(connect('bob-token', 'alice-app')), 'GW_ERR_NAME_TAKEN', 'alice-app is reserved for alice')
    assert.deepEqual(await get('alice-app'), { status: 200, body: 'up' })

    // A file change: bob is removed, carol (a token file) added.
    const bobDone = b.done
    write([alice, carol])
    await relay.waitForLine((l) => l.includes('"config reloaded"') && l.includes('"file change"'), 15_000)
    const bobError = await bobDone
    assert.equal(bobError?.code, 'GW_ERR_AUTH_REVOKED', 'bob\'s agent is told and stops')
    assert.equal(await refusal(connect('bob-token')), 'GW_ERR_AUTH_INVALID', 'bob is refused from now on')
    const c = await connect('carol-token-1')
    agents.push(c)
    assert.deepEqual(await get(c.tunnels[0]!.publicName), { status: 200, body: 'up' })
    assert.deepEqual(await get('alice-app'), { status: 200, body: 'up' }, 'alice stayed connected')

    // An invalid file is refused with a log line; the running config stays.
    writeFileSync(configPath, 'domain: localhost\ntokens: nope\n')
    const refused = JSON.parse(await relay.waitForLine((l) => l.includes('config reload refused'), 15_000)) as { error: string }
    assert.match(refused.error, /tokens: "nope" is not a list/)
    assert.deepEqual(await get('alice-app'), { status: 200, body: 'up' })
    assert.deepEqual(await get(c.tunnels[0]!.publicName), { status: 200, body: 'up' })
    write([alice, carol])
    await waitFor(() => relay.lines.filter((l) => l.includes('"config reloaded"')).length >= 2, 15_000, 'the fixed file reloaded')

    // SIGHUP: carol's token file (in another directory, not watched) has a new token.
    const carolDone = c.done
    writeFileSync(join(secrets, 'carol.token'), 'carol-token-2\n')
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(relay.lines.filter((l) => l.includes('"config reloaded"')).length, 2, 'nothing reloads the token file without SIGHUP')
    relay.kill('SIGHUP')
    await relay.waitForLine((l) => l.includes('"config reloaded"') && l.includes('"SIGHUP"'), 15_000)
    assert.equal((await carolDone)?.code, 'GW_ERR_AUTH_REVOKED')
    assert.equal(await refusal(connect('carol-token-1')), 'GW_ERR_AUTH_INVALID')
    const c2 = await connect('carol-token-2')
    agents.push(c2)
    assert.deepEqual(await get(c2.tunnels[0]!.publicName), { status: 200, body: 'up' })
    assert.deepEqual(await get('alice-app'), { status: 200, body: 'up' }, 'alice\'s agent never dropped')
    assert.equal(a.status().status, 'online')
    assert.equal(relay.child.exitCode, null, 'SIGHUP did not stop the relay')
  })

  it('reloads per-token limits on a file change: an agent already connected gets the new limit, and loses it again, without reconnecting or dropping a request in flight', { timeout: 90_000 }, async (t) => {
    const dir = tempDir()
    const held: Array<() => void> = []
    const upstream = await startUpstream((req, res) => {
      if (req.url === '/hold') return void held.push(() => res.end('held'))
      res.end('up')
    })
    const configPath = join(dir, 'relay.yml')
    const write = (limits: string): void => writeFileSync(configPath, [
      'domain: localhost', 'host: 127.0.0.1', 'http_port: 0', 'https_port: off', `state_dir: ${join(dir, 'state')}`, 'metrics_addr: 127.0.0.1:0', 'tokens:',
      `  - { label: alice, sha256: ${sha('alice-token')}${limits} }`, '',
    ].join('\n'))
    write('')
    let relay: SpawnedRelay | undefined
    let agent: Agent | undefined
    t.after(async () => {
      for (const release of held) release()
      await agent?.close()
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    relay = await spawnRelay({ config: configPath })
    const { started, url: relayUrl } = relay
    const reloadCounts = async (): Promise<Record<string, number>> => {
      const text = await (await request(started.metrics!)).body.text()
      const family = (parsePrometheusTextFormat(text) as Array<{ name: string; metrics: Array<{ value: string; labels?: Record<string, string> }> }>)
        .find((f) => f.name === 'gw_relay_config_reloads_total')
      assert.ok(family, 'gw_relay_config_reloads_total is exported')
      return Object.fromEntries(family.metrics.map((m) => [m.labels!.result!, Number(m.value)]))
    }
    const client = new Pool(relayUrl, { connections: 8 })
    t.after(() => client.close())
    const events = new AgentEvents()
    const statuses: string[] = []
    events.on('status', (s) => statuses.push(s.status))
    agent = await startAgent({ relay: relayUrl, authtoken: 'alice-token', endpoints: [{ upstream: upstream.url }], events })
    const host = `${agent.tunnels[0]!.publicName}.localhost`
    const get = async (path: string) => {
      const res = await client.request({ path, method: 'GET', headers: { host } })
      return { status: res.statusCode, code: res.headers['gw-error-code'], body: await res.body.text() }
    }
    const reloads = (): number => relay.lines.filter((l) => l.includes('"config reloaded"')).length
    // Two held requests, four: no limit yet.
    const holdAll = async (n: number) => {
      const before = held.length
      const pending = Array.from({ length: n }, () => get('/hold'))
      await waitFor(() => held.length === before + n, 10_000, `${n} requests held`)
      return pending
    }
    let pending = await holdAll(2)

    // The file now limits alice to one stream: her connected agent gets it at once. The two
    // requests in flight across the reload finish.
    write(', limits: { streams: 1 }')
    await waitFor(() => reloads() === 1, 15_000, 'the file change reloaded')
    for (const release of held.splice(0)) release()
    for (const r of await Promise.all(pending)) assert.deepEqual([r.status, r.body], [200, 'held'])
    pending = await holdAll(1)
    const refused = await get('/hold')
    assert.deepEqual([refused.status, refused.code], [503, 'GW_ERR_STREAM_LIMIT'])
    assert.equal(held.length, 1, 'the refused request never reached the upstream')
    held.splice(0)[0]!()
    assert.equal((await pending[0]!).status, 200)

    // The limit is taken out again: two held at once pass.
    write('')
    await waitFor(() => reloads() === 2, 15_000, 'the second file change reloaded')
    pending = await holdAll(2)
    for (const release of held.splice(0)) release()
    for (const r of await Promise.all(pending)) assert.equal(r.status, 200)
    assert.equal(agent.status().status, 'online')
    assert.ok(!statuses.includes('reconnecting'), `the agent never reconnected: ${statuses.join(',')}`)

    // gw_relay_config_reloads_total, which the README's GwRelayReloadFailed alert reads.
    assert.deepEqual(await reloadCounts(), { ok: 2 })
    writeFileSync(configPath, 'domain: localhost\nlimits: { streams: many }\n')
    await relay.waitForLine((l) => l.includes('config reload refused'), 15_000)
    assert.deepEqual(await reloadCounts(), { ok: 2, error: 1 })
    assert.equal((await get('/')).status, 200, 'the running config stays')
  })

  it('enforces per-token limits: tunnels at hello, streams 503, rps 429 with Retry-After, bandwidth by throttling', { timeout: 90_000 }, async (t) => {
    const dir = tempDir()
    const held: Array<() => void> = []
    const big = Buffer.alloc(1024 * 1024, 7)
    const upstream = await startUpstream((req, res) => {
      if (req.url === '/hold') {
        held.push(() => res.end('held'))
        return
      }
      if (req.url === '/big') return void res.end(big)
      res.end('ok')
    })
    const relay = await startRelay({
      host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: dir,
      tokens: [entry('tunnels-token', { tunnels: 1 }), entry('streams-token', { streams: 2 }), entry('rps-token', { rps: 1 }), entry('bw-token', { bandwidth: 256 * 1024 })],
      metricsAddr: '127.0.0.1:0',
    })
    const agents: Agent[] = []
    const pool = new Pool(relay.httpUrl!, { connections: 16 })
    t.after(async () => {
      for (const release of held) release()
      await pool.close()
      await Promise.all(agents.map((a) => a.close()))
      await relay.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    const connect = async (token: string, endpoints = 1) => {
      const agent = await startAgent({ relay: relay.httpUrl!, authtoken: token, endpoints: Array.from({ length: endpoints }, () => ({ upstream: upstream.url })) })
      agents.push(agent)
      return agent
    }
    const get = async (agent: Agent, path = '/') => {
      const res = await pool.request({ path, method: 'GET', headers: { host: `${agent.tunnels[0]!.publicName}.localhost` } })
      return { status: res.statusCode, code: res.headers['gw-error-code'], retryAfter: res.headers['retry-after'], body: await res.body.arrayBuffer() }
    }

    // tunnels: 1. Two endpoints in one hello, or a second agent, are refused at hello.
    await assert.rejects(startAgent({ relay: relay.httpUrl!, authtoken: 'tunnels-token', endpoints: [{ upstream: upstream.url }, { upstream: upstream.url }] }), { code: 'GW_ERR_TUNNEL_LIMIT' })
    const one = await connect('tunnels-token')
    await assert.rejects(startAgent({ relay: relay.httpUrl!, authtoken: 'tunnels-token', endpoints: [{ upstream: upstream.url }] }), { code: 'GW_ERR_TUNNEL_LIMIT' })
    // The same name again (a restart while the old link lingers) is not a second tunnel.
    const again = await startAgent({ relay: relay.httpUrl!, authtoken: 'tunnels-token', endpoints: [{ upstream: upstream.url, publicName: one.tunnels[0]!.publicName }] })
    agents.push(again)
    assert.equal((await get(again)).status, 200)

    // streams: 2. Two held requests fill it; a third gets 503 until one finishes.
    const s = await connect('streams-token')
    const first = get(s, '/hold')
    const second = get(s, '/hold')
    await waitFor(() => held.length === 2, 10_000, 'two requests held')
    const third = await get(s)
    assert.equal(third.status, 503)
    assert.equal(third.code, 'GW_ERR_STREAM_LIMIT')
    held.shift()!()
    assert.equal((await first).status, 200)
    assert.equal((await get(s)).status, 200, 'a finished request frees its slot')
    held.shift()!()
    assert.equal((await second).status, 200)

    // rps: 1 (a burst of one). Six at once: at most one per second gets through.
    const r = await connect('rps-token')
    const started = performance.now()
    const answers = await Promise.all(Array.from({ length: 6 }, () => get(r)))
    const elapsed = (performance.now() - started) / 1000
    const ok = answers.filter((x) => x.status === 200).length
    const limited = answers.filter((x) => x.status === 429)
    assert.ok(ok >= 1 && ok <= 1 + Math.ceil(elapsed), `${ok} passed in ${elapsed.toFixed(2)} s`)
    assert.equal(ok + limited.length, 6)
    for (const x of limited) {
      assert.equal(x.code, 'GW_ERR_RATE_LIMITED')
      assert.ok(Number(x.retryAfter) >= 1, 'Retry-After in seconds')
    }

    // bandwidth: 256 KiB/s to clients. 1 MiB cannot arrive faster than the limit allows,
    // less the first second's burst and what one stream window (256 KiB) lets through.
    const bw = await connect('bw-token')
    const t0 = performance.now()
    const download = await get(bw, '/big')
    const seconds = (performance.now() - t0) / 1000
    assert.equal(download.body.byteLength, big.length)
    assert.ok(seconds >= 1.5, `1 MiB at 256 KiB/s took ${seconds.toFixed(2)} s`)
    assert.equal((await get(bw)).status, 200, 'the throttled link still works')

    const metrics = await (await request(relay.metricsUrl!)).body.text()
    assert.match(metrics, new RegExp(`gw_relay_limit_hits_total\\{token="${sha('streams-token').slice(0, 8)}",limit="streams"\\} 1`))
    assert.match(metrics, new RegExp(`gw_relay_limit_hits_total\\{token="${sha('tunnels-token').slice(0, 8)}",limit="tunnels"\\} 2`))
    assert.match(metrics, new RegExp(`gw_relay_limit_hits_total\\{token="${sha('rps-token').slice(0, 8)}",limit="rps"\\} ${limited.length}\\n`))
  })
})
