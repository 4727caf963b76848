/**
 * ngrok's CLI habits with the real binary: `gw version`, `gw help`, a typo'd flag or
 * command answered in a line or two with a suggestion, `--url` with a full host checked
 * by a real `gw relay` against the domain it serves, `--log`, `--pooling-enabled`,
 * `--binding`, `--oauth`, and config files gw cannot serve refused with the reason.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type SpawnedRelay } from '../helpers/stack.js'

const VERSION = (JSON.parse(readFileSync(new URL('../../../packages/cli/package.json', import.meta.url), 'utf8')) as { version: string }).version

async function run(args: string[], env: Record<string, string> = {}) {
  const gw = spawnGw(args, env)
  const code = await gw.exited
  return { code, stdout: gw.lines.join('\n'), stderr: gw.stderr(), rawStderrLines: gw.stderr().trim().split('\n') }
}

async function getThrough(url: string, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const u = new URL(url)
  const pool = new Pool(`http://127.0.0.1:${u.port}`)
  try {
    const res = await pool.request({ path, method: 'GET', headers: { host: u.host, ...headers } })
    return { status: res.statusCode, body: await res.body.text() }
  } finally {
    await pool.close()
  }
}

describe('gw version and gw help', () => {
  it('gw version prints the version, as ngrok version does', async () => {
    const r = await run(['version'])
    assert.equal(r.code, 0)
    assert.equal(r.stdout.trim(), `gw version ${VERSION}`)
  })

  it('gw help lists the commands; gw help http shows the http usage', async () => {
    const all = await run(['help'])
    assert.equal(all.code, 0)
    assert.match(all.stdout, /^ {2}http +Put a local HTTP service on a public URL/m)
    assert.match(all.stdout, /^ {2}version +/m)
    const http = await run(['help', 'http'])
    assert.equal(http.code, 0)
    assert.match(http.stdout, /\$ gw http UPSTREAM/)
    assert.match(http.stdout.replace(/\s+/g, ' '), /--policy-file=<value> traffic policy file .*also --traffic-policy-file/)
  })
})

describe('a mistyped flag or command', () => {
  it('gets one line with the nearest flag and exit 2, not the usage', async () => {
    const r = await run(['http', '3000', '--basic-aut', 'a:b'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /unknown flag --basic-aut for gw http; did you mean --basic-auth\?/)
    assert.doesNotMatch(r.stderr, /USAGE|FLAGS/)
    // The message and oclif's code line; nothing else.
    assert.ok(r.stderr.trim().split('\n').length <= 3, r.stderr)
  })

  it('suggests across swapped letters', async () => {
    assert.match((await run(['http', '3000', '--upstream-tsl-verify'])).stderr, /did you mean --upstream-tls-verify\?/)
  })

  it('says what to use instead of an ngrok flag gw does not have', async () => {
    const r = await run(['http', '3000', '--request-header-add', 'x-a:1'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--request-header-add is an ngrok flag gw does not have: use an add-headers rule in --traffic-policy-file/)
  })

  it('a bad option value and a missing argument are one message too', async () => {
    const bad = await run(['http', '3000', '--log-format', 'xml'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /Expected --log-format=xml to be one of: term, logfmt, json/)
    assert.doesNotMatch(bad.stderr, /USAGE/)
    const missing = await run(['http'])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /gw http needs UPSTREAM: UPSTREAM is the local service/)
  })

  it('a mistyped command gets "did you mean"', async () => {
    const r = await run(['htp', '3000'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /gw has no command "htp"; did you mean gw http\?/)
  })
})

describe('--url with a full host, checked by a real relay', () => {
  it('serves https://app.<domain> and refuses a host under a domain the relay does not serve', async () => {
    const dir = tempDir('gw-url-')
    const upstream = await startUpstream((req, res) => res.end(`host ${req.headers.host}`))
    let relay: SpawnedRelay | undefined
    try {
      relay = await spawnRelay({ workers: null, domain: 'tunnel.test', stateDir: dir })
      const { started, url: relayUrl } = relay
      const env = { GW_CONFIG: join(dir, 'gw.yml') }
      for (const url of ['https://app.tunnel.test', 'app2.tunnel.test']) {
        const agent = spawnGw(['http', String(upstream.port), '--relay', relayUrl, '--url', url, '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], env)
        try {
          const line = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
          const host = url.replace(/^https:\/\//, '')
          assert.equal(line.url, `http://${host}:${started.http_port}`)
          assert.deepEqual(await getThrough(line.url), { status: 200, body: `host ${host}:${started.http_port}` })
        } finally {
          agent.kill()
          await agent.exited
        }
      }
      const refused = await run(['http', String(upstream.port), '--relay', relayUrl, '--url', 'app.example.com', '--no-tui', '--inspect-addr', '127.0.0.1:0'], env)
      assert.equal(refused.code, 2)
      assert.match(refused.stderr, /this relay serves \*\.tunnel\.test, not app\.example\.com \(it takes no custom domains: gw relay --custom-domains\); ask for <name>\.tunnel\.test/)
      assert.match(refused.stderr, /GW_ERR_DOMAIN_NOT_SERVED/)
      // Two labels under the domain are not one name either.
      const deep = await run(['http', String(upstream.port), '--relay', relayUrl, '--url', 'a.b.tunnel.test', '--no-tui', '--inspect-addr', '127.0.0.1:0'], env)
      assert.match(deep.stderr, /GW_ERR_DOMAIN_NOT_SERVED/)
    } finally {
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a URL gw cannot serve before connecting, with the reason (the other shapes: endpoint-url.test)', async () => {
    const r = await run(['http', '3000', '--url', 'tcp://0.tcp.localhost:5432', '--no-tui'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--url "tcp:\/\/0\.tcp\.localhost:5432": gw http serves http:\/\/ and https:\/\/ URLs; a tcp:\/\/ endpoint is served by gw tcp <port> --url tcp:\/\/0\.tcp\.localhost:5432/)
  })
})

describe('ngrok flags: --log, --pooling-enabled, --binding, --oauth', () => {
  it('--log FILE gets the log lines; --log stderr moves them off stdout', async () => {
    const dir = tempDir('gw-log-')
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    const file = join(dir, 'gw.log')
    const env = { GW_CONFIG: join(dir, 'gw.yml') }
    const agent = spawnGw(['http', String(upstream.port), '--log', file, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'], env)
    try {
      await waitFor(() => {
        try {
          return readFileSync(file, 'utf8').includes('"started tunnel"')
        } catch {
          return false
        }
      }, 15_000, 'the started tunnel line in the log file')
      const started = JSON.parse(readFileSync(file, 'utf8').split('\n').find((l) => l.includes('"started tunnel"'))!) as { url: string }
      assert.equal((await getThrough(started.url, '/x')).body, 'ok')
      await waitFor(() => readFileSync(file, 'utf8').includes('"msg":"GET /x"'), 10_000, 'the request line in the log file')
      assert.equal(agent.lines.length, 0, 'nothing on stdout')
    } finally {
      agent.kill()
      await agent.exited
    }
    const toStderr = spawnGw(['http', String(upstream.port), '--log', 'stderr', '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'], env)
    try {
      await waitFor(() => toStderr.stderr().includes('"started tunnel"'), 15_000, 'started tunnel on stderr')
      assert.equal(toStderr.lines.length, 0)
    } finally {
      toStderr.kill()
      await toStderr.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('--pooling-enabled asks the relay to pool, and the relay does (two agents on one name: relay-pooling.test)', async () => {
    const dir = tempDir('gw-pool-')
    const upstream = await startUpstream((_req, res) => res.end('ok'))
    const agent = spawnGw(['http', String(upstream.port), '--url', 'pooled', '--pooling-enabled', '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    try {
      const started = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
      const api = JSON.parse(await agent.waitForLine((l) => l.includes('"agent API"'))) as { url: string }
      assert.equal((await getThrough(started.url)).body, 'ok')
      const endpoints = (await (await fetch(`${api.url}/api/endpoints`)).json()) as { endpoints: Array<{ pooling_enabled: boolean }> }
      assert.equal(endpoints.endpoints[0]!.pooling_enabled, true)
      // The agent warns when the relay's welcome leaves pooling out; this relay pools.
      assert.ok(!agent.lines.some((l) => l.includes('does not pool')), agent.lines.join('\n'))
    } finally {
      agent.kill()
      await agent.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('--binding internal without a *.internal URL and --oauth are refused with the reason', async () => {
    const internal = await run(['http', '3000', '--binding', 'internal', '--no-tui'])
    assert.equal(internal.code, 2)
    assert.match(internal.stderr, /--binding internal needs --url https:\/\/<name>\.internal/)
    const oauth = await run(['http', '3000', '--oauth', 'google', '--no-tui'])
    assert.equal(oauth.code, 2)
    assert.match(oauth.stderr, /--oauth google: ngrok's --oauth uses ngrok's managed google app, which exists only in ngrok's cloud; register your own OAuth app and write an oauth rule/)
  })
})

describe('config files gw cannot serve as written', () => {
  it('reads a v2 tunnels: file: config check says so, gw start serves it with its basic_auth and headers', async () => {
    const dir = tempDir('gw-v2-')
    const upstream = await startUpstream((req, res) => res.end(`from=${String(req.headers['x-from'])}`))
    const file = join(dir, 'ngrok.yml')
    writeFileSync(file, `version: "2"
authtoken: not-needed-locally
region: eu
tunnels:
  web:
    proto: http
    addr: ${upstream.port}
    subdomain: webby
    basic_auth: ["ann:s3cret"]
    request_header:
      add: ["X-From: v2"]
`)
    try {
      const checked = await run(['config', 'check', '--config', file])
      assert.equal(checked.code, 0)
      assert.match(checked.stdout, /Valid configuration file at .*\(ngrok v2 format, read as version 3\)/)
      assert.match(checked.stdout, /endpoints: +web/)
      const agent = spawnGw(['start', 'web', '--config', file, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'])
      try {
        const line = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
        assert.match(line.url, /^http:\/\/webby\.localhost:\d+$/)
        assert.equal((await getThrough(line.url)).status, 401)
        const auth = `Basic ${Buffer.from('ann:s3cret').toString('base64')}`
        assert.deepEqual(await getThrough(line.url, '/', { authorization: auth }), { status: 200, body: 'from=v2' })
      } finally {
        agent.kill()
        await agent.exited
      }
    } finally {
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  for (const [name, text, why] of [
    ['a v2 tcp tunnel', 'version: "2"\ntunnels:\n  ssh: {proto: tcp, addr: 22}\n', /tunnels\.ssh: proto tcp is not supported: gw serves http tunnels only/],
    ['an http2 upstream on a tcp:// endpoint', 'version: 3\nendpoints:\n  - {name: db, url: "tcp://1.tcp.localhost:5432", upstream: {url: 5432, protocol: http2}}\n', /endpoint "db": upstream\.protocol: a tcp endpoint passes bytes as they come; leave it out/],
  ] as const) {
    it(`gw start refuses ${name} with the reason (the other refusals: endpoint-url.test)`, async () => {
      const dir = tempDir('gw-cfg-')
      const file = join(dir, 'gw.yml')
      writeFileSync(file, text)
      try {
        const started = await run(['start', '--all', '--config', file, '--no-tui'])
        assert.equal(started.code, 2)
        assert.match(started.stderr, why)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
