/**
 * The access log of a real `gw relay --access-log` process, with a real `gw http` agent:
 * one JSON line per request, the same request id the agent's inspector shows at
 * /api/requests/http, and no credential from the request anywhere in the file.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { spawnGw, spawnRelay, startUpstream, tempDir, waitFor, type SpawnedRelay } from '../helpers/stack.js'

interface LogLine {
  time: string
  request_id: string
  name: string | null
  method: string
  path: string
  status: number
  bytes_in: number
  bytes_out: number
  duration_ms: number
  remote: string
  scheme: string
  token: string | null
  gw_error_code?: string
}

describe('relay access log (--access-log)', () => {
  it('writes one line per request with the id the inspector shows, and no credentials', { timeout: 90_000 }, async (t) => {
    const dir = tempDir()
    const upstream = await startUpstream((req, res) => {
      req.resume()
      req.on('end', () => {
        if (req.url === '/refused') {
          res.writeHead(403).end('no')
          return
        }
        res.end(`ok ${req.method}`)
      })
    })
    const logPath = join(dir, 'access.log')
    let relay: SpawnedRelay | undefined
    let agent: ReturnType<typeof spawnGw> | undefined
    t.after(async () => {
      agent?.kill()
      if (agent) await agent.exited
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    relay = await spawnRelay({ workers: null, stateDir: dir, args: ['--authtoken', 'log-token', '--access-log', logPath, '--metrics-addr', '127.0.0.1:0'] })
    const { started, url: relayUrl } = relay
    assert.match(String(started.metrics), /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    agent = spawnGw(['http', String(upstream.port), '--relay', relayUrl, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'],
      { GW_CONFIG: join(dir, 'gw.yml'), GW_AUTHTOKEN: 'log-token' })
    const api = (JSON.parse(await agent.waitForLine((l) => l.includes('"msg":"agent API"'), 60_000)) as { url: string }).url
    const tunnel = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'), 60_000)) as { url: string }
    const host = new URL(tunnel.url).host
    const name = host.split('.')[0]!

    const secrets = ['bearer-secret-1', 'cookie-secret-2', 'query-secret-3']
    const a = await request(`${relayUrl}/orders/7?api_key=${secrets[2]}&x=1`, {
      headers: { host, authorization: `Bearer ${secrets[0]}`, cookie: `sid=${secrets[1]}` },
    })
    assert.equal(await a.body.text(), 'ok GET')
    const b = await request(`${relayUrl}/upload`, { method: 'POST', headers: { host }, body: 'y'.repeat(100) })
    assert.equal(await b.body.text(), 'ok POST')
    const c = await request(`${relayUrl}/refused`, { headers: { host } })
    const cBody = await c.body.text()
    assert.equal(c.statusCode, 403, `${c.headers['gw-error-code']}: ${cBody.slice(0, 300)}`)
    const d = await request(`${relayUrl}/`, { headers: { host: 'nobody.localhost' } })
    assert.equal(d.statusCode, 404)
    await d.body.text()

    let lines: LogLine[] = []
    await waitFor(() => {
      try {
        lines = readFileSync(logPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine)
      } catch {
        return false
      }
      return lines.length >= 4
    }, 15_000, 'four access log lines')
    assert.equal(lines.length, 4)
    const [get, post, refused, missing] = lines as [LogLine, LogLine, LogLine, LogLine]
    const tokenId = createHash('sha256').update('log-token').digest('hex').slice(0, 8)
    assert.equal(get.name, name)
    assert.equal(get.method, 'GET')
    assert.equal(get.path, '/orders/7', 'the query is left out')
    assert.equal(get.status, 200)
    assert.equal(get.remote, '127.0.0.1')
    assert.equal(get.scheme, 'http')
    assert.equal(get.token, tokenId)
    assert.ok(get.bytes_in > 0 && get.bytes_out > 0)
    assert.ok(get.duration_ms >= 0)
    assert.ok(Math.abs(Date.parse(get.time) - Date.now()) < 60_000)
    assert.equal(get.gw_error_code, undefined)
    assert.equal(post.method, 'POST')
    assert.ok(post.bytes_in > 100, 'the body is counted')
    assert.equal(refused.status, 403)
    assert.equal(missing.name, 'nobody')
    assert.equal(missing.status, 404)
    assert.equal(missing.gw_error_code, 'GW_ERR_TUNNEL_NOT_FOUND')
    assert.equal(missing.token, null)
    const ids = lines.map((l) => l.request_id)
    assert.equal(new Set(ids).size, 4)
    for (const id of ids) assert.match(id, /^req_[0-9a-f]{8}[0-9a-z]{6}$/)

    // The inspector shows the same ids for the three requests the agent served.
    const captured = await request(`${api}/api/requests/http`)
    const list = ((await captured.body.json()) as { requests: Array<{ id: string; request: { uri: string } }> }).requests
    const byUri = new Map(list.map((r) => [r.request.uri.split('?')[0], r.id]))
    assert.equal(byUri.get('/orders/7'), get.request_id)
    assert.equal(byUri.get('/upload'), post.request_id)
    assert.equal(byUri.get('/refused'), refused.request_id)
    const one = await request(`${api}/api/requests/http/${get.request_id}`)
    assert.equal(one.statusCode, 200)
    await one.body.text()

    const text = readFileSync(logPath, 'utf8')
    for (const secret of [...secrets, 'log-token']) assert.ok(!text.includes(secret), `${secret} is not in the access log`)
  })

  it('SIGHUP reopens the file, as logrotate needs: lines before go to the rotated file, lines after to a new one', { timeout: 90_000 }, async (t) => {
    const dir = tempDir()
    const upstream = await startUpstream((req, res) => res.end(`ok ${req.url}`))
    const logPath = join(dir, 'access.log')
    let relay: SpawnedRelay | undefined
    let agent: ReturnType<typeof spawnGw> | undefined
    t.after(async () => {
      agent?.kill()
      if (agent) await agent.exited
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    relay = await spawnRelay({ workers: null, stateDir: dir, args: ['--authtoken', 'log-token', '--access-log', logPath] })
    const relayUrl = relay.url
    agent = spawnGw(['http', String(upstream.port), '--relay', relayUrl, '--url', 'rotated', '--log-format', 'json', '--no-tui', '--no-inspect', '--inspect-addr', '127.0.0.1:0'],
      { GW_CONFIG: join(dir, 'gw.yml'), GW_AUTHTOKEN: 'log-token' })
    await agent.waitForLine((l) => l.includes('"started tunnel"'), 60_000)
    const get = async (path: string): Promise<void> => {
      const res = await request(`${relayUrl}${path}`, { headers: { host: 'rotated.localhost' } })
      assert.equal(await res.body.text(), `ok ${path}`)
    }
    const paths = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as LogLine).path)

    await get('/before')
    await waitFor(() => existsSync(logPath) && paths(logPath).length === 1, 15_000, 'the first line')
    // logrotate: rename, then SIGHUP (its postrotate).
    renameSync(logPath, `${logPath}.1`)
    await get('/renamed') // still written to the open file, now access.log.1
    await waitFor(() => paths(`${logPath}.1`).length === 2, 15_000, 'the second line in the renamed file')
    relay.kill('SIGHUP')
    await relay.waitForLine((l) => l.includes('access log reopened'), 15_000)
    await get('/after')
    await waitFor(() => existsSync(logPath) && paths(logPath).length === 1, 15_000, 'a line in the new file')
    assert.deepEqual(paths(`${logPath}.1`), ['/before', '/renamed'])
    assert.deepEqual(paths(logPath), ['/after'])
    assert.equal(relay.child.exitCode, null, 'SIGHUP did not stop the relay')
  })
})
