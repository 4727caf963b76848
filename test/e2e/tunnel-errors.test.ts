import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { Pool } from 'undici'
import { startStack, startUpstream, waitFor, type Stack } from '../helpers/stack.js'

/** Send raw bytes to a port and collect the whole answer. */
function raw(port: number, bytes: string | Buffer, keepOpenMs = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let out = ''
    socket.on('data', (d) => (out += d.toString('latin1')))
    socket.on('error', reject)
    socket.on('close', () => resolve(out))
    socket.write(bytes)
    if (keepOpenMs === 0) return
    setTimeout(() => socket.end(), keepOpenMs)
  })
}

describe('errors public clients see', () => {
  let stack: Stack
  let pool: Pool

  before(async () => {
    stack = await startStack(
      (req, res) => {
        const url = new URL(req.url!, 'http://x')
        if (url.pathname === '/slow') return void setTimeout(() => res.end('late'), 3000)
        if (url.pathname === '/continue') {
          let n = 0
          req.on('data', (c: Buffer) => (n += c.length))
          req.on('end', () => res.end(`got ${n}`))
          return
        }
        res.end('ok')
      },
      { relay: { maxHeaderSize: 8 * 1024, headersTimeout: 1000 }, agent: { responseTimeout: 500 } },
    )
    pool = new Pool(stack.httpOrigin)
  })

  after(async () => {
    await pool.close()
    await stack.close()
  })

  it('answers 504 with GW_ERR_UPSTREAM_TIMEOUT when the upstream is too slow', async () => {
    const res = await pool.request({ path: '/slow', method: 'GET', headers: { host: stack.host } })
    assert.equal(res.statusCode, 504)
    assert.equal(res.headers['gw-error-code'], 'GW_ERR_UPSTREAM_TIMEOUT')
    assert.match(await res.body.text(), /GW_ERR_UPSTREAM_TIMEOUT/)
  })

  it('answers 431 when the request head exceeds --max-header-size', async () => {
    const answer = await raw(stack.relay.httpPort!, `GET / HTTP/1.1\r\nHost: ${stack.host}\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`)
    assert.match(answer, /^HTTP\/1\.1 431 /)
    assert.match(answer, /gw-error-code: GW_ERR_HEADERS_TOO_LARGE/i)
  })

  it('answers 408 when the request head is too slow (slowloris)', async () => {
    const answer = await raw(stack.relay.httpPort!, `GET / HTTP/1.1\r\nHost: ${stack.host}\r\n`, 5000)
    assert.match(answer, /^HTTP\/1\.1 408 /)
    assert.match(answer, /gw-error-code: GW_ERR_HEADERS_TIMEOUT/i)
  })

  it('answers Expect: 100-continue with 100 before the body', async () => {
    const answer = await raw(
      stack.relay.httpPort!,
      `POST /continue HTTP/1.1\r\nHost: ${stack.host}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      1500,
    )
    // The body was never sent: the server must still have said 100 first.
    assert.match(answer, /^HTTP\/1\.1 100 Continue\r\n/)
  })

  it('sends the body after 100 Continue and the upstream gets it', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(stack.relay.httpPort!, '127.0.0.1')
      let out = ''
      let sent = false
      socket.on('data', (d) => {
        out += d.toString()
        if (out.startsWith('HTTP/1.1 100') && !sent && out.includes('\r\n\r\n')) {
          sent = true
          socket.write('hello')
        }
      })
      socket.on('close', () => resolve(out))
      socket.on('error', reject)
      socket.write(`POST /continue HTTP/1.1\r\nHost: ${stack.host}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`)
    })
    assert.match(answer, /HTTP\/1\.1 200 OK[\s\S]*got 5$/)
  })

  it('answers 502 GW_ERR_UPSTREAM_REFUSED naming the upstream when it is down', async () => {
    const upstreamUrl = stack.upstream.url
    await stack.upstream.close()
    const res = await pool.request({ path: '/', method: 'GET', headers: { host: stack.host, accept: 'application/json' } })
    assert.equal(res.statusCode, 502)
    assert.equal(res.headers['gw-error-code'], 'GW_ERR_UPSTREAM_REFUSED')
    const body = (await res.body.json()) as { error: { detail: string } }
    assert.ok(body.error.detail.includes(upstreamUrl.replace('127.0.0.1', 'localhost')) || body.error.detail.includes(upstreamUrl), body.error.detail)
    assert.match(body.error.detail, /ECONNREFUSED/)
  })
})

describe('an agent that went away', () => {
  it('answers 502 GW_ERR_AGENT_OFFLINE for a known name whose agent is gone', async () => {
    const stack = await startStack((_req, res) => res.end('ok'))
    try {
      await stack.agent.close()
      await waitFor(() => stack.relay.onlineNames().length === 0, 5000, 'the relay to notice')
      const pool = new Pool(stack.httpOrigin)
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: stack.host } })
      assert.equal(res.statusCode, 502)
      assert.equal(res.headers['gw-error-code'], 'GW_ERR_AGENT_OFFLINE')
      await res.body.text()
      await pool.close()
    } finally {
      await stack.close()
    }
  })
})

describe('localhost upstreams', () => {
  it('reaches a service that listens only on ::1 through "localhost"', async (t) => {
    let v6: Awaited<ReturnType<typeof startUpstream>>
    try {
      v6 = await startUpstream((_req, res) => res.end('from ::1'), '::1')
    } catch {
      return t.skip('no IPv6 loopback on this machine')
    }
    const stack = await startStack((_req, res) => res.end('unused'), { agent: { endpoints: [{ upstream: String(v6.port) }] } })
    try {
      const pool = new Pool(stack.httpOrigin)
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: stack.host } })
      assert.equal(await res.body.text(), 'from ::1')
      await pool.close()
    } finally {
      await stack.close()
      await v6.close()
    }
  })
})
