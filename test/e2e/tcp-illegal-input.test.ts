/**
 * Illegal input around tcp endpoints never crashes a process: hellos that ask for tcp in
 * every wrong shape at the real relay (refused, the relay goes on), and TCP_HEADs in
 * every wrong shape from a rogue relay at the real agent (the stream is reset, the
 * agent stays online and still serves a well-formed connection). Garbage on the public
 * TCP port reaches the upstream as bytes, which is what a tcp endpoint is for.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import {
  createWebSocketTransport, encodeJsonMessage, encodeMessageHeader, MessageReader, MessageType, PROTOCOL_VERSION, Session,
  checkHello, writeJsonMessage, type Stream,
} from '@gw/protocol'
import { startRelay } from '@gw/relay'
import { startAgent } from '@gw/cli/agent/agent'
import { freePort, tempDir, waitFor } from '../helpers/stack.js'
import { echo, exchange, portOf, startTcpServer } from '../helpers/tcp.js'

/** Send one hello with these endpoints; resolve with the refusal's code, or 'welcome'. */
async function hello(relayUrl: string, endpoints: unknown): Promise<string> {
  const ws = new WebSocket(`${relayUrl.replace(/^http/, 'ws')}/_gw/agent`, { perMessageDeflate: false })
  await once(ws, 'open')
  const session = new Session(createWebSocketTransport(ws), { client: true })
  const control = session.open()
  control.on('error', () => {})
  writeJsonMessage(control, MessageType.HELLO, { version: PROTOCOL_VERSION, authtoken: '', agentId: 'rogue', client: 'rogue', endpoints })
  try {
    const message = await new MessageReader(control).next()
    if (!message) return 'closed'
    if (message.type === MessageType.WELCOME) return 'welcome'
    return (JSON.parse(message.payload.toString()) as { code: string }).code
  } catch {
    return 'closed'
  } finally {
    session.close()
  }
}

describe('illegal input around tcp endpoints', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  it('the relay refuses every malformed tcp hello and keeps serving', async () => {
    const stateDir = tempDir()
    const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir, tcpPorts: 'any' })
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => relay.close())
    // A free port below the ephemeral range, not a fixed one: 45123 was sometimes in use
    // (an outgoing connection's), and the relay then said UNAVAILABLE before TAKEN.
    const twice = await freePort()
    const cases: Array<[string, unknown, string]> = [
      ['port 0', [{ proto: 'tcp', port: 0 }], 'GW_ERR_MESSAGE_MALFORMED'],
      ['port 65536', [{ proto: 'tcp', port: 65536 }], 'GW_ERR_MESSAGE_MALFORMED'],
      ['port as a string', [{ proto: 'tcp', port: '22' }], 'GW_ERR_MESSAGE_MALFORMED'],
      ['a fractional port', [{ proto: 'tcp', port: 2.5 }], 'GW_ERR_MESSAGE_MALFORMED'],
      ['a port on an http endpoint', [{ proto: 'http', port: 2222 }], 'GW_ERR_MESSAGE_MALFORMED'],
      ['an unknown proto', [{ proto: 'udp' }], 'GW_ERR_MESSAGE_MALFORMED'],
      ['proto missing', [{ port: 2222 }], 'GW_ERR_MESSAGE_MALFORMED'],
      ['one port twice', [{ proto: 'tcp', port: twice }, { proto: 'tcp', port: twice }], 'GW_ERR_TCP_PORT_TAKEN'],
      ['a tls name that is not a label', [{ proto: 'tls', name: 'a..b' }], 'GW_ERR_NAME_INVALID'],
      ['a tls host outside the domain', [{ proto: 'tls', host: 'app.example.com' }], 'GW_ERR_DOMAIN_NOT_SERVED'],
    ]
    for (const [what, endpoints, code] of cases) assert.equal(await hello(relay.httpUrl!, endpoints), code, what)
    // A hello with sixty-four tcp endpoints is served (each its own port), then the relay still works.
    assert.equal(await hello(relay.httpUrl!, Array.from({ length: 64 }, () => ({ proto: 'tcp' }))), 'welcome')
    const upstream = await startTcpServer(echo)
    cleanups.push(() => upstream.close())
    const agent = await startAgent({ relay: relay.httpUrl!, endpoints: [{ proto: 'tcp', upstream: String(upstream.port) }] })
    cleanups.push(() => agent.close())
    const port = portOf(agent.tunnels[0]!.publicUrl)
    // Garbage on the public port is just bytes: it reaches the upstream and comes back.
    const junk = Buffer.from([0, 0xff, 0x16, 0x03, 0x01, 0, 0, 1, 2, 3, 0x0d, 0x0a])
    assert.deepEqual((await exchange(port, junk)).received, junk)
    await waitFor(() => relay.agentCount === 1, 5000, 'the rogue links gone')
  })

  it('the agent resets every malformed TCP_HEAD from a rogue relay and stays online', async () => {
    const upstream = await startTcpServer(echo)
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
    await once(wss, 'listening')
    cleanups.push(() => upstream.close(), () => new Promise<void>((resolve) => wss.close(() => resolve())))
    const sessions: Session[] = []
    const ready = new Promise<Session>((resolve) => {
      wss.on('connection', (ws) => {
        const session = new Session(createWebSocketTransport(ws), { client: false })
              sessions.push(session)
        session.once('stream', (control: Stream) => {
          control.on('error', () => {})
          new MessageReader(control).next().then((m) => {
            checkHello(JSON.parse(m!.payload.toString()))
            writeJsonMessage(control, MessageType.WELCOME, { version: PROTOCOL_VERSION, endpoints: [{ name: '4242', port: 4242, proto: 'tcp', urls: ['tcp://rogue:4242'] }], heartbeatTimeout: 15_000 })
            resolve(session)
          }, () => {})
        })
      })
    })
    const agent = await startAgent({ relay: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, endpoints: [{ proto: 'tcp', upstream: String(upstream.port) }] })
    cleanups.push(() => agent.close())
    const session = await ready
    const good = { proto: 'tcp', tunnel: '4242', remoteAddress: '203.0.113.9', remotePort: 5555, serverPort: 4242, connectedAt: Date.now() }
    const bad: Array<[string, Buffer]> = [
      ['not JSON', Buffer.concat([encodeMessageHeader(MessageType.TCP_HEAD, 3), Buffer.from('{{{')])],
      ['an array', encodeJsonMessage(MessageType.TCP_HEAD, [])],
      ['an unknown tunnel', encodeJsonMessage(MessageType.TCP_HEAD, { ...good, tunnel: '1' })],
      ['the wrong proto for the endpoint', encodeJsonMessage(MessageType.TCP_HEAD, { ...good, proto: 'tls' })],
      ['proto http', encodeJsonMessage(MessageType.TCP_HEAD, { ...good, proto: 'http' })],
      ['a negative port', encodeJsonMessage(MessageType.TCP_HEAD, { ...good, remotePort: -1 })],
      ['serverPort 0', encodeJsonMessage(MessageType.TCP_HEAD, { ...good, serverPort: 0 })],
      ['no connectedAt', encodeJsonMessage(MessageType.TCP_HEAD, { ...good, connectedAt: undefined })],
      ['a serverName that is a number', encodeJsonMessage(MessageType.TCP_HEAD, { ...good, serverName: 7 })],
      ['a head larger than any head may be', encodeMessageHeader(MessageType.TCP_HEAD, 0x7fffffff)],
      ['a DATA message first', Buffer.concat([encodeMessageHeader(MessageType.DATA, 2), Buffer.from('hi')])],
    ]
    for (const [what, bytes] of bad) {
      const stream = session.open()
      stream.on('error', () => {})
      const closed = new Promise((resolve) => stream.once('close', resolve))
      stream.write(bytes)
      await closed
      assert.equal(agent.status().status, 'online', what)
    }
    // A well-formed head still works: bytes reach the upstream and come back.
    const stream = session.open()
    stream.on('error', () => {})
    const chunks: Buffer[] = []
    stream.on('data', (d: Buffer) => chunks.push(d))
    stream.write(encodeJsonMessage(MessageType.TCP_HEAD, good))
    stream.end('ping')
    await new Promise((resolve) => stream.once('end', resolve))
    assert.equal(Buffer.concat(chunks).toString(), 'ping')
  })
})
