/**
 * The embedded relay's per-tunnel loopback URL: `gw http` without --relay gives each
 * tunnel `http://127.0.0.1:<port>`, which Node's fetch reaches with no Host trickery
 * (its resolver does not map *.localhost to loopback on many Linux machines). Driven
 * through the real `gw` binary, with Node's fetch and curl.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { execFile, spawnSync } from 'node:child_process'
import { request as undiciRequest } from 'undici'
import { WebSocket, WebSocketServer } from 'ws'
import { spawnGw, startUpstream, tempDir } from '../helpers/stack.js'

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)))
  })
}

describe('gw http with the embedded relay: a 127.0.0.1 URL per tunnel', () => {
  it('is logged, listed in /api/tunnels, and reached by Node fetch and curl with its own Host', async () => {
    const dir = tempDir()
    const hosts: string[] = []
    const upstream = await startUpstream((req, res) => {
      hosts.push(String(req.headers.host))
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`))
    })
    const gw = spawnGw(['http', String(upstream.port), '--no-tui', '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    try {
      const loopbackLine = JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"') && /"url":"http:\/\/127\.0\.0\.1:\d+"/.test(l))) as { url: string; name: string }
      const loopback = loopbackLine.url
      assert.equal(loopbackLine.name, 'command_line')
      const localhost = JSON.parse(gw.lines.find((l) => l.includes('"started tunnel"') && l.includes('.localhost:'))!) as { url: string }
      assert.match(localhost.url, /^http:\/\/[a-z0-9-]+\.localhost:\d+$/)
      assert.notEqual(new URL(loopback).port, new URL(localhost.url).port, 'a port of its own, not the relay\'s')
      const api = (JSON.parse(await gw.waitForLine((l) => l.includes('"agent API"'))) as { url: string }).url

      // /api/tunnels lists it after the *.localhost URLs; the first entry stays the https one, as ngrok's clients expect.
      const tunnels = (await (await fetch(`${api}/api/tunnels`)).json()) as { tunnels: Array<{ name: string; public_url: string; proto: string }> }
      assert.match(tunnels.tunnels[0]!.public_url, /^https:\/\/[a-z0-9-]+\.localhost:\d+$/)
      const entry = tunnels.tunnels.find((t) => t.name === 'command_line (loopback)')
      assert.ok(entry, JSON.stringify(tunnels))
      assert.equal(entry.public_url, loopback)
      assert.equal(entry.proto, 'http')

      // Node's own fetch: no Host header to set, no resolver to fool.
      const res = await fetch(`${loopback}/hello?x=1`)
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'GET /hello?x=1 ')
      const posted = await fetch(`${loopback}/upload`, { method: 'POST', body: 'some body' })
      assert.equal(await posted.text(), 'POST /upload some body')
      assert.equal(hosts[0], new URL(loopback).host, 'the upstream sees the Host the client used')

      if (spawnSync('curl', ['--version']).status === 0) {
        assert.equal(await curl([`${loopback}/from-curl`]), 'GET /from-curl ')
      }
      // A second tunnel started through the agent API gets its own port too.
      const created = await fetch(`${api}/api/tunnels`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'second', proto: 'http', addr: String(upstream.port) }),
      })
      assert.equal(created.status, 201)
      const after = (await (await fetch(`${api}/api/tunnels`)).json()) as { tunnels: Array<{ name: string; public_url: string }> }
      const second = after.tunnels.find((t) => t.name === 'second (loopback)')
      assert.ok(second, JSON.stringify(after))
      assert.notEqual(second.public_url, loopback)
      assert.equal(await (await fetch(`${second.public_url}/two`)).text(), 'GET /two ')
    } finally {
      gw.kill()
      await gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('is printed beside the *.localhost URL in the banner', async () => {
    const dir = tempDir()
    const upstream = await startUpstream((_req, res) => res.end('banner ok'))
    const gw = spawnGw(['http', String(upstream.port), '--no-tui', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    try {
      const line = await gw.waitForLine((l) => /^Forwarding\s+http:\/\/127\.0\.0\.1:\d+ → /.test(l))
      assert.ok(gw.lines.some((l) => /^Forwarding\s+http:\/\/[a-z0-9-]+\.localhost:\d+ → /.test(l)))
      const url = /http:\/\/127\.0\.0\.1:\d+/.exec(line)![0]
      assert.equal(await (await fetch(url)).text(), 'banner ok')
    } finally {
      gw.kill()
      await gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('is reached by undici and by a ws WebSocket, Node\'s other clients, with no Host set', async () => {
    const dir = tempDir()
    const upstream = await startUpstream((req, res) => res.end(`undici ${req.url}`))
    const wss = new WebSocketServer({ noServer: true })
    upstream.server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m: Buffer) => ws.send(`echo ${m.toString()}`))))
    const gw = spawnGw(['http', String(upstream.port), '--no-tui', '--log-format', 'json', '--no-inspect', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    try {
      const loopback = (JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"') && /"url":"http:\/\/127\.0\.0\.1:\d+"/.test(l))) as { url: string }).url
      const res = await undiciRequest(`${loopback}/u`)
      assert.equal(await res.body.text(), 'undici /u')
      const ws = new WebSocket(`${loopback.replace(/^http/, 'ws')}/socket`)
      const answer = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send('over loopback'))
        ws.once('message', (m: Buffer) => resolve(m.toString()))
        ws.once('error', reject)
      })
      assert.equal(answer, 'echo over loopback')
      ws.close()
    } finally {
      gw.kill()
      await gw.exited
      wss.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
