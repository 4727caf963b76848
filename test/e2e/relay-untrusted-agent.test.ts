/**
 * The relay treats what an agent sends as untrusted: a response head or body that could
 * corrupt the client's connection (and, with pipelining, another tenant's response) is
 * refused with 502 GW_ERR_AGENT_BAD_RESPONSE before any byte of it reaches the client,
 * or, once the response is under way, ends the connection.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import type { Stream } from '@gw/protocol'
import { dataMessage, endMessage, headMessage, startRogueAgent, type RogueAgent } from '../helpers/rogue-agent.js'
import { rawExchange, statuses } from '../helpers/raw-client.js'
import { startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'

const FORGED = 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Forged: yes\r\n\r\nforged'

/** What the rogue agent answers, by request path. */
const answers: Record<string, (stream: Stream) => void> = {
  '/short-cl': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Content-Length', '5'] }), dataMessage(`hello${FORGED}`), endMessage()])),
  '/short-cl-split': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Content-Length', '5'] }), dataMessage('hel'), dataMessage(`lo${FORGED}`), endMessage()])),
  '/long-cl': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Content-Length', '100'] }), dataMessage('only ten b'), endMessage()])),
  '/two-cl': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Content-Length', '5', 'Content-Length', '11'] }), dataMessage('hello'), endMessage()])),
  '/cl-list': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Content-Length', '5, 5'] }), dataMessage('hello'), endMessage()])),
  '/cl-sign': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Content-Length', '+5'] }), dataMessage('hello'), endMessage()])),
  '/status-100': (s) => s.end(Buffer.concat([headMessage({ status: 100, rawHeaders: [] }), dataMessage(FORGED), endMessage()])),
  '/status-101': (s) => s.end(Buffer.concat([headMessage({ status: 101, rawHeaders: ['Upgrade', 'evil', 'Connection', 'upgrade'] }), dataMessage(FORGED), endMessage()])),
  '/status-199': (s) => s.end(Buffer.concat([headMessage({ status: 199, rawHeaders: [] }), endMessage()])),
  '/reason-crlf': (s) => s.end(Buffer.concat([headMessage({ status: 200, statusMessage: `OK\r\nContent-Length: 6\r\n\r\nforged${FORGED}`, rawHeaders: ['Content-Length', '2'] }), dataMessage('ok'), endMessage()])),
  '/reason-latin1': (s) => s.end(Buffer.concat([headMessage({ status: 404, statusMessage: 'Non trouv\u00e9', rawHeaders: ['Content-Length', '2'] }), dataMessage('no'), endMessage()])),
  '/reason-nul': (s) => s.end(Buffer.concat([headMessage({ status: 404, statusMessage: 'Not\u0000Found\u007f\u0001', rawHeaders: ['Content-Length', '2'] }), dataMessage('no'), endMessage()])),
  '/header-name': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Bad Name', 'x', 'Content-Length', '2'] }), dataMessage('ok'), endMessage()])),
  '/header-crlf': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['X-A', `a\r\n\r\n${FORGED}`, 'Content-Length', '2'] }), dataMessage('ok'), endMessage()])),
  '/header-nul': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['X-A', 'a\u0000b'] }), dataMessage('ok'), endMessage()])),
  '/header-wide': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['X-A', 'caf\u0101'] }), dataMessage('ok'), endMessage()])),
  '/trailer-bad': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Trailer', 'X-T'] }), dataMessage('ok'), endMessage(['X-T', 'a\r\nb', 'Bad Name', 'v'])])),
  '/trailer-code': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Trailer', 'gw-error-code'] }), dataMessage('ok'), endMessage(['gw-error-code', 'GW_ERR_AUTH_INVALID', 'X-Fine', 'yes'])])),
  '/upgrade-101-crlf': (s) => s.end(Buffer.concat([headMessage({ status: 101, statusMessage: `Switching\r\n\r\n${FORGED}`, rawHeaders: ['Upgrade', 'websocket', 'Connection', 'Upgrade'] })])),
  '/upgrade-header-crlf': (s) => s.end(Buffer.concat([headMessage({ status: 101, rawHeaders: ['Upgrade', 'websocket', 'Connection', 'Upgrade', 'X-A', `a\r\n\r\n${FORGED}`] })])),
  '/upgrade-100': (s) => s.end(Buffer.concat([headMessage({ status: 100, rawHeaders: [] })])),
  '/upgrade-refusal-two-cl': (s) => s.end(Buffer.concat([headMessage({ status: 403, rawHeaders: ['Content-Length', '2', 'Content-Length', '9'] }), dataMessage('no'), endMessage()])),
  '/head-cl': (s) => s.end(Buffer.concat([headMessage({ status: 200, rawHeaders: ['Content-Length', '1000'] }), endMessage()])),
  '/no-content-cl': (s) => s.end(Buffer.concat([headMessage({ status: 204, rawHeaders: [] }), endMessage()])),
}

describe('the relay treats what an agent sends as untrusted', () => {
  let relay: Relay
  let rogue: RogueAgent
  let honest: Agent
  let upstream: Upstream
  let stateDir: string
  let upstreamRequests = 0

  before(async () => {
    stateDir = tempDir()
    relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir, allowAnonymous: true })
    rogue = await startRogueAgent(relay.httpUrl!, 'evil', (stream, head) => {
      const answer = answers[head.target]
      if (answer) answer(stream)
      else stream.destroy()
    })
    upstream = await startUpstream((req, res) => {
      upstreamRequests++
      if (req.url === '/trailer') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'gw-error-code, x-checksum' })
        res.write('body')
        res.addTrailers({ 'gw-error-code': 'GW_ERR_AUTH_INVALID', 'x-checksum': 'abc' })
        return void res.end()
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('the bank says hello')
    })
    honest = await startAgent({ relay: relay.httpUrl!, endpoints: [{ name: 'bank', publicName: 'bank', upstream: upstream.url }] })
  })

  after(async () => {
    rogue.close()
    await honest.close()
    await relay.close()
    await upstream.close()
    rmSync(stateDir, { recursive: true, force: true })
  })

  const get = (path: string, extra = ''): Promise<{ text: string; closed: boolean }> =>
    rawExchange(relay.httpPort!, `GET ${path} HTTP/1.1\r\nHost: evil.localhost\r\n${extra}Connection: close\r\n\r\n`)

  it('never lets a forged response reach another tenant over a pipelined connection', async () => {
    for (const path of ['/short-cl', '/short-cl-split', '/status-100', '/status-101', '/reason-crlf', '/header-crlf']) {
      const before = upstreamRequests
      const { text } = await rawExchange(
        relay.httpPort!,
        `GET ${path} HTTP/1.1\r\nHost: evil.localhost\r\n\r\nGET / HTTP/1.1\r\nHost: bank.localhost\r\nConnection: close\r\n\r\n`,
      )
      assert.doesNotMatch(text, /forged|X-Forged/i, `${path}: the agent's extra bytes reached the client:\n${text}`)
      // Whatever the relay answered for the second request came from the bank, or nothing did.
      const heads = statuses(text)
      assert.ok(heads.length <= 2, `${path}: ${heads.length} response heads for 2 requests`)
      if (heads.length === 2) {
        assert.match(text, /the bank says hello/, `${path}: the second response is the bank's`)
        assert.equal(upstreamRequests, before + 1)
      }
    }
  })

  it('cuts the connection after exactly Content-Length bytes when the agent sends more', async () => {
    const { text, closed } = await get('/short-cl')
    assert.ok(closed, 'the relay closed the connection')
    // The head may or may not have left before the cut; the body beyond 5 bytes never does.
    assert.ok(text === '' || /\r\n\r\n(hel|hello)?$/.test(text), `got:\n${text}`)
    assert.doesNotMatch(text, /forged/)
  })

  it('cuts the connection when the agent ends before Content-Length bytes', async () => {
    const { text, closed } = await get('/long-cl')
    assert.ok(closed, 'the relay closed the connection')
    const body = text.slice(text.indexOf('\r\n\r\n') + 4)
    assert.ok(body.length < 100, 'the client never got a body that looks complete')
  })

  for (const [path, what] of [
    ['/two-cl', 'two Content-Length headers'],
    ['/cl-list', 'a Content-Length list'],
    ['/cl-sign', 'a signed Content-Length'],
    ['/status-100', '100 as a final status'],
    ['/status-101', '101 outside an upgrade'],
    ['/status-199', 'another 1xx as a final status'],
    ['/header-name', 'a header name that is not a token'],
    ['/header-crlf', 'CR LF in a header value'],
    ['/header-nul', 'NUL in a header value'],
    ['/header-wide', 'a header value beyond Latin-1'],
  ] as const) {
    it(`answers 502 GW_ERR_AGENT_BAD_RESPONSE to ${what}`, async () => {
      const { text } = await get(path)
      assert.deepEqual(statuses(text), [502], `got:\n${text}`)
      assert.match(text, /gw-error-code: GW_ERR_AGENT_BAD_RESPONSE/i)
      assert.doesNotMatch(text, /forged/)
    })
  }

  it('drops a reason phrase with bytes outside the grammar and keeps the status', async () => {
    for (const path of ['/reason-crlf', '/reason-latin1', '/reason-nul']) {
      const { text } = await get(path)
      const line = text.slice(0, text.indexOf('\r\n'))
      assert.match(line, /^HTTP\/1\.1 (200 OK|404 Not Found)$/, `${path}: ${JSON.stringify(line)}`)
      assert.doesNotMatch(text, /forged/)
    }
  })

  it('drops trailers that are not valid, and a gw-error-code trailer, and stays up', async () => {
    for (const path of ['/trailer-bad', '/trailer-code']) {
      const { text } = await get(path)
      assert.deepEqual(statuses(text), [200], `${path}:\n${text}`)
      assert.doesNotMatch(text, /a\r\nb|Bad Name|GW_ERR_AUTH_INVALID/)
    }
    const { text } = await get('/trailer-code')
    assert.match(text, /X-Fine: yes/, 'a valid trailer still passes')
  })

  it('strips a gw-error-code trailer from the upstream, behind an honest agent', async () => {
    const { text } = await rawExchange(relay.httpPort!, 'GET /trailer HTTP/1.1\r\nHost: bank.localhost\r\nTE: trailers\r\nConnection: close\r\n\r\n')
    assert.deepEqual(statuses(text), [200])
    assert.match(text, /x-checksum: abc/i, 'other trailers pass')
    assert.doesNotMatch(text, /GW_ERR_AUTH_INVALID/, 'only gw itself may claim an error code')
  })

  it('answers a HEAD and a 204 without waiting for a body', async () => {
    const head = await rawExchange(relay.httpPort!, 'HEAD /head-cl HTTP/1.1\r\nHost: evil.localhost\r\nConnection: close\r\n\r\n')
    assert.deepEqual(statuses(head.text), [200])
    assert.match(head.text, /Content-Length: 1000/i)
    const none = await get('/no-content-cl')
    assert.deepEqual(statuses(none.text), [204])
  })

  it('refuses an upgrade answer with CR LF in its headers or a 1xx other than 101, and drops a bad reason phrase', async () => {
    for (const path of ['/upgrade-101-crlf', '/upgrade-header-crlf', '/upgrade-100', '/upgrade-refusal-two-cl']) {
      const dropped = path === '/upgrade-101-crlf'
      const { text } = await rawExchange(
        relay.httpPort!,
        `GET ${path} HTTP/1.1\r\nHost: evil.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      )
      assert.doesNotMatch(text, /forged|X-Forged/i, `${path}:\n${text}`)
      if (dropped) {
        // A bad reason phrase is dropped, not refused: the switch goes ahead with the standard one.
        assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/, `${path}:\n${text}`)
        continue
      }
      assert.deepEqual(statuses(text), [502], `${path}:\n${text}`)
      assert.match(text, /gw-error-code: GW_ERR_AGENT_BAD_RESPONSE/i)
    }
  })

  it('is still up and serving the honest tenant, with no stream left open', async () => {
    const { text } = await rawExchange(relay.httpPort!, 'GET / HTTP/1.1\r\nHost: bank.localhost\r\nConnection: close\r\n\r\n')
    assert.match(text, /the bank says hello/)
    await waitFor(() => relay.openStreams() === 0, 5000, 'the relay to close every stream')
  })
})
