/**
 * The agent API driven by the clients people already have: the `ngrok` npm package's
 * NgrokClient (what ngrok.connect() and getApi() use) and, since pyngrok cannot be
 * installed here (PyPI is unreachable and Debian does not package it), the exact
 * requests pyngrok 7 makes, taken from alexdlaird/pyngrok `pyngrok/ngrok.py`
 * (`connect`, `get_tunnels`, `disconnect`, `api_request`). All of them against the real
 * `gw http` binary with its embedded relay.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool, request } from 'undici'
import { spawnGw, startUpstream, tempDir, type Spawned, type Upstream } from '../helpers/stack.js'

const clientsDir = fileURLToPath(new URL('../../clients/', import.meta.url))
const hasNgrok = existsSync(join(clientsDir, 'node_modules', 'ngrok', 'package.json'))
const skip = hasNgrok ? false : 'the ngrok npm package is not installed: npm ci --ignore-scripts --prefix test/clients'

interface NgrokClientLike {
  listTunnels(): Promise<{ tunnels: Array<{ name: string; public_url: string; proto: string; uri: string; config: { addr: string } }> }>
  startTunnel(options: Record<string, unknown>): Promise<{ name: string; public_url: string; proto: string; uri: string; config: { addr: string } }>
  tunnelDetail(name: string): Promise<{ name: string; public_url: string }>
  stopTunnel(name: string): Promise<boolean>
  listRequests(options: Record<string, unknown>): Promise<{ requests: Array<{ tunnel_name: string; request: { uri: string } }> }>
}

async function viaTunnel(publicUrl: string, path: string): Promise<{ status: number; body: string; code: string | undefined }> {
  const u = new URL(publicUrl)
  const pool = new Pool(`http://127.0.0.1:${u.port}`)
  try {
    const res = await pool.request({ path, method: 'GET', headers: { host: u.host } })
    return { status: res.statusCode, body: await res.body.text(), code: res.headers['gw-error-code'] as string | undefined }
  } finally {
    await pool.close()
  }
}

describe('agent API with real clients', { skip }, () => {
  let dir: string
  let upstream: Upstream
  let gw: Spawned
  let api: string

  before(async () => {
    dir = tempDir('gw-clients-')
    upstream = await startUpstream((req, res) => res.end(`upstream saw ${req.url}`))
    gw = spawnGw(['http', String(upstream.port), '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    api = (JSON.parse(await gw.waitForLine((l) => l.includes('"msg":"agent API"'), 60_000)) as { url: string }).url
  })

  after(async () => {
    gw.kill()
    await gw.exited
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('the ngrok npm package starts, lists, filters and stops a tunnel on the running agent', async () => {
    const { NgrokClient, NgrokClientError } = createRequire(clientsDir)('ngrok') as { NgrokClient: new (url: string) => NgrokClientLike; NgrokClientError: new () => Error }
    const client = new NgrokClient(api)

    const started = await client.startTunnel({ name: 'npm', proto: 'http', addr: upstream.port, subdomain: 'npmtun' })
    assert.equal(started.name, 'npm')
    assert.match(started.public_url, /^https:\/\/npmtun\.localhost:\d+$/)
    assert.equal(started.config.addr, `http://localhost:${upstream.port}`)

    const listed = await client.listTunnels()
    const names = listed.tunnels.map((t) => t.name)
    assert.ok(names.includes('command_line') && names.includes('npm') && names.includes('npm (http)'), names.join(','))
    const http = listed.tunnels.find((t) => t.name === 'npm (http)')!
    assert.equal((await client.tunnelDetail('npm')).public_url, started.public_url)

    assert.deepEqual(await viaTunnel(http.public_url, '/through-npm'), { status: 200, body: 'upstream saw /through-npm', code: undefined })
    // tunnel_name matches exactly the name each request is listed under.
    await waitForRequests(client, 'npm (http)', 1)
    assert.equal((await client.listRequests({ tunnel_name: 'npm' })).requests.length, 0)
    assert.equal((await client.listRequests({ tunnel_name: 'np' })).requests.length, 0)

    // Refusals come back as NgrokClientError with gw's message.
    await assert.rejects(client.startTunnel({ name: 'npm', proto: 'http', addr: upstream.port }), (err: Error & { body?: { error_code: string } }) =>
      err instanceof NgrokClientError && err.body?.error_code === 'GW_ERR_API_TUNNEL_EXISTS')
    await assert.rejects(client.startTunnel({ name: 'ssh', proto: 'tcp', addr: 22 }), (err: Error & { body?: { error_code: string; msg: string } }) =>
      err.body?.error_code === 'GW_ERR_API_TUNNEL_INVALID' && /proto tcp is not supported/.test(err.body.msg))
    await assert.rejects(client.startTunnel({ name: 'far', proto: 'http', addr: upstream.port, hostname: 'app.example.com' }), (err: Error & { body?: { error_code: string; msg: string } }) =>
      err.body?.error_code === 'GW_ERR_DOMAIN_NOT_SERVED' && /not app\.example\.com/.test(err.body.msg))
    await assert.rejects(client.stopTunnel('command_line'), (err: Error & { body?: { error_code: string } }) =>
      err.body?.error_code === 'GW_ERR_API_TUNNEL_NOT_STOPPABLE')

    assert.equal(await client.stopTunnel('npm'), true)
    assert.deepEqual((await client.listTunnels()).tunnels.map((t) => t.name).sort(), ['command_line', 'command_line (http)', 'command_line (loopback)'])
    const gone = await viaTunnel(http.public_url, '/after-stop')
    assert.notEqual(gone.status, 200)
    assert.match(String(gone.code), /GW_ERR_TUNNEL_NOT_FOUND|GW_ERR_AGENT_OFFLINE/)
  })

  it("pyngrok's requests, config v3: POST /api/endpoints, GET /api/endpoints, DELETE the uri", async () => {
    // pyngrok: api_request() sets Content-Type: application/json on every call; connect()
    // posts {name, upstream: {url}} (from _interpolate_tunnel_definition) to /api/endpoints.
    const headers = { 'content-type': 'application/json' }
    const name = 'http-3001-6c9e0b9e-9a38-4a3f-8a0d-2b8f7c1d4e55'
    const created = await request(`${api}/api/endpoints`, { method: 'POST', headers, body: JSON.stringify({ name, upstream: { url: `http://localhost:${upstream.port}` } }) })
    assert.equal(created.statusCode, 201)
    const tunnel = (await created.body.json()) as Record<string, any>
    // NgrokTunnel reads public_url or url, and uri for disconnect().
    assert.match(tunnel.url, /^https:\/\/[a-z]+-[a-z]+-[a-z2-9]{6}\.localhost:\d+$/)
    assert.equal(tunnel.uri, `/api/endpoints/${name}`)
    assert.deepEqual(tunnel.upstream, { url: `http://localhost:${upstream.port}`, protocol: 'http1' })
    assert.equal(tunnel.pooling_enabled, false)

    // get_tunnels(): GET /api/endpoints and the "endpoints" key.
    const listed = await request(`${api}/api/endpoints`, { headers })
    const endpoints = ((await listed.body.json()) as { endpoints: Array<Record<string, any>> }).endpoints
    assert.deepEqual(endpoints.map((e) => e.name), ['command_line', name])
    assert.ok(endpoints.every((e) => typeof e.url === 'string' && e.url !== ''))

    // A policy given as ngrok's YAML string, on a named URL; PUT replaces it.
    const put = await request(`${api}/api/endpoints/web`, {
      method: 'PUT', headers,
      body: JSON.stringify({ url: 'https://putweb.localhost', upstream: { url: String(upstream.port) }, traffic_policy: 'on_http_request:\n  - actions:\n      - type: custom-response\n        config: {status_code: 200, body: from policy}\n' }),
    })
    assert.equal(put.statusCode, 201)
    const web = (await put.body.json()) as Record<string, any>
    assert.match(web.traffic_policy, /custom-response/)
    const webHttp = ((await (await request(`${api}/api/tunnels`)).body.json()) as { tunnels: Array<{ name: string; public_url: string }> }).tunnels.find((t) => t.name === 'web (http)')!
    assert.equal((await viaTunnel(webHttp.public_url, '/')).body, 'from policy')
    const replaced = await request(`${api}/api/endpoints/web`, { method: 'PUT', headers, body: JSON.stringify({ url: 'putweb', upstream: { url: upstream.port } }) })
    assert.equal(replaced.statusCode, 200)
    await replaced.body.dump()
    assert.equal((await viaTunnel(webHttp.public_url, '/p')).body, 'upstream saw /p')

    // disconnect(): DELETE <uri>, Content-Type set, no body.
    for (const uri of [tunnel.uri as string, '/api/endpoints/web']) {
      const deleted = await request(`${api}${uri}`, { method: 'DELETE', headers })
      assert.equal(deleted.statusCode, 204)
      await deleted.body.dump()
    }
    const again = await request(`${api}${tunnel.uri as string}`, { method: 'DELETE', headers })
    assert.equal(again.statusCode, 404)
    assert.equal(((await again.body.json()) as { error_code: string }).error_code, 'GW_ERR_TUNNEL_UNKNOWN')

    const bad = await request(`${api}/api/endpoints`, { method: 'POST', headers, body: JSON.stringify({ name: 'x', upstream: { url: 80 }, agent_tls_termination: {} }) })
    assert.equal(bad.statusCode, 400)
    assert.match(((await bad.body.json()) as { msg: string }).msg, /gw does not support agent_tls_termination/)
  })

  it("pyngrok's requests, config v2: POST /api/tunnels {addr, proto, name}, DELETE /api/tunnels/:name", async () => {
    const headers = { 'content-type': 'application/json' }
    const created = await request(`${api}/api/tunnels`, { method: 'POST', headers, body: JSON.stringify({ addr: String(upstream.port), proto: 'http', name: 'py2', schemes: ['http', 'https'] }) })
    assert.equal(created.statusCode, 201)
    const tunnel = (await created.body.json()) as { public_url: string; uri: string; name: string }
    assert.equal(tunnel.uri, '/api/tunnels/py2')
    const deleted = await request(`${api}${tunnel.uri}`, { method: 'DELETE', headers })
    assert.equal(deleted.statusCode, 204)
    await deleted.body.dump()
  })
})

async function waitForRequests(client: NgrokClientLike, tunnel: string, n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { requests } = await client.listRequests({ tunnel_name: tunnel })
    if (requests.length >= n) {
      assert.ok(requests.every((r) => r.tunnel_name === tunnel))
      return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.fail(`no ${n} requests under ${tunnel}`)
}
