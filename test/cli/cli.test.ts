import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFile, spawnSync } from 'node:child_process'
import { Pool } from 'undici'
import { spawnGw, startUpstream, tempDir } from '../helpers/stack.js'

function hasCurl(): boolean {
  return spawnSync('curl', ['--version']).status === 0
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)))
  })
}

async function run(args: string[], env: Record<string, string> = {}) {
  const gw = spawnGw(args, env)
  const code = await gw.exited
  return { code, stdout: gw.lines.join('\n'), stderr: gw.stderr() }
}

describe('gw config', () => {
  it('add-authtoken writes the token to the config file, readable by its owner only', async () => {
    const dir = tempDir()
    const file = join(dir, 'gw.yml')
    try {
      const added = await run(['config', 'add-authtoken', 'tok-123'], { GW_CONFIG: file })
      assert.equal(added.code, 0)
      assert.match(added.stdout, new RegExp(`saved to configuration file: ${file}`))
      assert.match(readFileSync(file, 'utf8'), /authtoken: tok-123/)
      assert.equal(statSync(file).mode & 0o077, 0)
      const checked = await run(['config', 'check'], { GW_CONFIG: file })
      assert.equal(checked.code, 0)
      assert.match(checked.stdout, /Valid configuration file at/)
      assert.match(checked.stdout, /authtoken: +set/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reports a broken config file with its line and column, and exits non-zero', async () => {
    const dir = tempDir()
    const file = join(dir, 'gw.yml')
    writeFileSync(file, 'agent:\n  authtoken: [unclosed\n')
    try {
      const result = await run(['config', 'check'], { GW_CONFIG: file })
      assert.notEqual(result.code, 0)
      assert.match(result.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:\\d+:\\d+`))
      assert.match(result.stderr, /GW_ERR_CONFIG/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gw http input errors', () => {
  for (const [input, pattern] of [
    ['99999', /invalid port 99999: a port is 1-65535/],
    ['ftp://localhost:21', /the scheme must be http or https, got ftp/],
    ['localhost:70000', /invalid port 70000/],
  ] as const) {
    it(`rejects the upstream "${input}" with the value and the fix`, async () => {
      const result = await run(['http', input, '--no-tui'])
      assert.equal(result.code, 2)
      assert.match(result.stderr, pattern)
      assert.match(result.stderr, /GW_ERR_INVALID_UPSTREAM/)
    })
  }

  it('names the relay URL and the reason when the relay is unreachable', async () => {
    const dir = tempDir()
    try {
      const result = await run(['http', '3000', '--relay', 'http://127.0.0.1:1', '--no-tui', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
      assert.equal(result.code, 1)
      assert.match(result.stderr, /cannot reach the relay at http:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/)
      assert.match(result.stderr, /GW_ERR_RELAY_UNREACHABLE/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gw http with the embedded relay', () => {
  it('prints a *.localhost URL as JSON, says the relay is local, and the URL works', async () => {
    const dir = tempDir()
    const upstream = await startUpstream((_req, res) => res.end('embedded ok'))
    const gw = spawnGw(['http', String(upstream.port), '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    try {
      const started = JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"') && l.includes('"url":"http://'))) as { url: string; addr: string }
      assert.match(started.url, /^http:\/\/[a-z]+-[a-z]+-[a-z2-9]{6}\.localhost:\d+$/)
      assert.equal(started.addr, `http://localhost:${upstream.port}`)
      await gw.waitForLine((l) => l.includes('reachable from this machine only'))
      const url = new URL(started.url)
      const pool = new Pool(`http://127.0.0.1:${url.port}`)
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: url.host } })
      assert.equal(await res.body.text(), 'embedded ok')
      await pool.close()
    } finally {
      gw.kill()
      await gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gw http --no-tui --log-format json, the request log', () => {
  it('writes one JSON line per request, none lost or merged when many end in the same turn, all out before exit', async () => {
    const dir = tempDir()
    const upstream = await startUpstream((req, res) => res.end(`log ${req.url}`))
    const gw = spawnGw(['http', String(upstream.port), '--no-tui', '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    const n = 300
    try {
      const started = JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"') && l.includes('"url":"http://'))) as { url: string }
      const url = new URL(started.url)
      const pool = new Pool(`http://127.0.0.1:${url.port}`, { connections: 64 })
      // Many at once, so that the agent ends several requests in one event-loop turn.
      const bodies = await Promise.all(Array.from({ length: n }, async (_, i) => {
        const res = await pool.request({ path: `/r/${i}?q="x"`, method: 'GET', headers: { host: url.host } })
        return res.body.text()
      }))
      assert.equal(bodies[7], 'log /r/7?q="x"')
      await pool.close()
    } finally {
      // The lines of the last turn may still be pending: SIGTERM, then every one must be there.
      gw.kill()
      await gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
    const requests = gw.lines.filter((l) => l.includes('"GET /r/')).map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.equal(requests.length, n, `${requests.length} request lines of ${n}`)
    const targets = new Set(requests.map((r) => r.msg))
    for (let i = 0; i < n; i++) assert.ok(targets.has(`GET /r/${i}?q="x"`), `no line for /r/${i}`)
    for (const r of requests) {
      assert.equal(r.lvl, 'info')
      assert.equal(r.status, 200)
      assert.equal(typeof r.duration_ms, 'number')
      assert.ok(!Number.isNaN(Date.parse(String(r.t))), `t is not a time: ${String(r.t)}`)
    }
  })
})

describe('gw http, checked with curl', () => {
  it('answers curl on the printed http and https *.localhost URLs, https trusting the printed CA', { skip: !hasCurl() && 'no curl' }, async () => {
    const dir = tempDir()
    const upstream = await startUpstream((req, res) => res.end(`curl reached ${req.url}`))
    const gw = spawnGw(['http', String(upstream.port), '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    try {
      const urls = await Promise.all(['http', 'https'].map(async (scheme) =>
        (JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"') && l.includes(`"url":"${scheme}://`))) as { url: string }).url))
      const local = JSON.parse(await gw.waitForLine((l) => l.includes('reachable from this machine only'))) as { ca: string }
      // curl resolves *.localhost to loopback itself: no --resolve, as a user would type it.
      assert.equal(await curl([`${urls[0]}/plain`]), 'curl reached /plain')
      assert.equal(await curl(['--cacert', local.ca, `${urls[1]}/secure`]), 'curl reached /secure')
    } finally {
      gw.kill()
      await gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gw start', () => {
  it('starts several endpoints from the config file over one connection', async () => {
    const dir = tempDir()
    const api = await startUpstream((_req, res) => res.end('api'))
    const web = await startUpstream((_req, res) => res.end('web'))
    writeFileSync(
      join(dir, 'gw.yml'),
      `version: 3
endpoints:
  - name: api
    url: api-${process.pid}.localhost
    upstream: { url: ${api.port} }
  - name: web
    upstream: { url: "localhost:${web.port}" }
    traffic_policy:
      on_http_response:
        - actions: [{ type: add-headers, config: { headers: { x-from-policy: "yes" } } }]
`,
    )
    const gw = spawnGw(['start', '--all', '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    try {
      await gw.waitForLine((l) => l.includes('"started tunnel"') && l.includes('"name":"web"') && l.includes('"url":"http://'))
      const urls = gw.lines.filter((l) => l.includes('"started tunnel"') && l.includes('"url":"http://')).map((l) => JSON.parse(l) as { name: string; url: string })
        .filter((u) => u.url.includes('.localhost:')) // not the embedded relay's 127.0.0.1 URL of each
      const byName = new Map(urls.map((u) => [u.name, new URL(u.url)]))
      assert.equal(byName.get('api')!.hostname, `api-${process.pid}.localhost`)
      const pool = new Pool(`http://127.0.0.1:${byName.get('api')!.port}`)
      const a = await pool.request({ path: '/', method: 'GET', headers: { host: byName.get('api')!.host } })
      assert.equal(await a.body.text(), 'api')
      const w = await pool.request({ path: '/', method: 'GET', headers: { host: byName.get('web')!.host } })
      assert.equal(await w.body.text(), 'web')
      assert.equal(w.headers['x-from-policy'], 'yes')
      await pool.close()
    } finally {
      gw.kill()
      await gw.exited
      await api.close()
      await web.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('says which endpoints exist when a name is unknown', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'gw.yml'), 'endpoints:\n  - name: api\n    upstream: { url: 3001 }\n')
    try {
      const result = await run(['start', 'nope'], { GW_CONFIG: join(dir, 'gw.yml') })
      assert.equal(result.code, 2)
      assert.match(result.stderr, /no endpoint named "nope".*it defines: api/s)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
