/**
 * The raw TCP stream kind: TCP_HEAD (0x07) and its check, tcp and tls endpoints in the
 * hello and the welcome, and the compatibility rules (an http-only hello and welcome,
 * as older agents and relays send them, still pass).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PassThrough } from 'node:stream'
import { checkHello, checkInternalEndpoints, checkTcpHead, checkWelcome, INTERNAL_RAW_TARGET_PATTERN, MessageReader, MessageType, MessageWriter, PROTOCOL_VERSION, type TcpHead } from '@gw/protocol'

const head: TcpHead = { proto: 'tcp', tunnel: '20001', remoteAddress: '203.0.113.9', remotePort: 40000, serverPort: 20001, connectedAt: 1 }
const hello = (endpoints: unknown[]): unknown => ({ version: PROTOCOL_VERSION, authtoken: '', agentId: 'a', client: 'c', endpoints })

describe('TCP_HEAD', () => {
  it('round-trips through the writer and the reader, then the stream is raw bytes', async () => {
    const stream = new PassThrough()
    const reader = new MessageReader(stream)
    // The head and the first raw bytes in one chunk, as one yamux frame carries them.
    const out = new PassThrough()
    new MessageWriter(out).tcpHead({ ...head, proto: 'tls', serverName: 'app.localhost' })
    out.end(Buffer.from([0x16, 0x03, 0x01, 0x05]))
    stream.write(Buffer.concat(await out.toArray()))
    const message = await reader.next()
    assert.equal(message!.type, MessageType.TCP_HEAD)
    assert.equal(MessageType.TCP_HEAD, 0x07)
    assert.deepEqual(checkTcpHead(JSON.parse(message!.payload.toString())), { ...head, proto: 'tls', serverName: 'app.localhost' })
    // The reader stops after the head: what follows is the connection's, byte for byte.
    assert.deepEqual(reader.detach(), Buffer.from([0x16, 0x03, 0x01, 0x05]))
  })

  it('refuses every other shape with GW_ERR_MESSAGE_MALFORMED', () => {
    assert.deepEqual(checkTcpHead({ ...head }), head)
    for (const bad of [null, [], 'x', { ...head, proto: 'http' }, { ...head, tunnel: 1 }, { ...head, remoteAddress: undefined },
      { ...head, remotePort: -1 }, { ...head, remotePort: 65536 }, { ...head, serverPort: 0 }, { ...head, serverPort: 1.5 },
      { ...head, connectedAt: '1' }, { ...head, serverName: 3 }]) {
      assert.throws(() => checkTcpHead(bad), { code: 'GW_ERR_MESSAGE_MALFORMED' }, JSON.stringify(bad))
    }
  })
})

describe('tcp and tls endpoints in the handshake', () => {
  it('a hello may ask for tcp (with or without a port) and tls endpoints; an http-only hello is as before', () => {
    assert.ok(checkHello(hello([{ proto: 'http', name: 'a' }])))
    assert.ok(checkHello(hello([{ proto: 'tcp' }, { proto: 'tcp', port: 20001, pooling: true }, { proto: 'tls', name: 'app' }])))
  })
  it('a port only on tcp, and only 1-65535', () => {
    for (const e of [{ proto: 'tcp', port: 0 }, { proto: 'tcp', port: 65536 }, { proto: 'tcp', port: '22' }, { proto: 'http', port: 22 }, { proto: 'tls', port: 443 }, { proto: 'udp' }]) {
      assert.throws(() => checkHello(hello([e])), { code: 'GW_ERR_MESSAGE_MALFORMED' }, JSON.stringify(e))
    }
  })
  it('a welcome carries the port and proto of a tcp endpoint; one without them (an older relay) still passes', () => {
    assert.ok(checkWelcome({ version: 1, heartbeatTimeout: 1, endpoints: [{ name: 'a', urls: ['http://a.localhost'] }] }))
    assert.ok(checkWelcome({ version: 1, heartbeatTimeout: 1, endpoints: [{ name: '20001', port: 20001, proto: 'tcp', urls: ['tcp://h:20001'] }] }))
    for (const e of [{ name: 'a', urls: [], port: 0 }, { name: 'a', urls: [], proto: 'udp' }]) {
      assert.throws(() => checkWelcome({ version: 1, heartbeatTimeout: 1, endpoints: [e] }), { code: 'GW_ERR_MESSAGE_MALFORMED' })
    }
  })
})

describe('tcp and tls internal endpoints on the wire (untrusted input)', () => {
  it('INTERNAL_ENDPOINTS takes a raw list beside the HTTP hosts; an old message without it still passes', () => {
    assert.deepEqual(checkInternalEndpoints({ endpoints: [{ host: 'api.internal' }] }), { endpoints: [{ host: 'api.internal' }] })
    const m = { endpoints: [], raw: [{ proto: 'tcp', host: 'camera.internal:22' }, { proto: 'tls', host: 'db.internal:443', pooling: true }] }
    assert.deepEqual(checkInternalEndpoints(m), m)
    for (const raw of [
      [{ proto: 'udp', host: 'camera.internal:22' }],
      [{ proto: 'tcp', host: 'camera.internal' }], // the port is required
      [{ proto: 'tcp', host: 'camera.internal:0' }],
      [{ proto: 'tcp', host: 'camera.internal:70000' }],
      [{ proto: 'tcp', host: 'Camera.internal:22' }],
      [{ proto: 'tcp', host: 'camera.example.com:22' }],
      [{ proto: 'tcp', host: 'camera.internal:22', pooling: 'yes' }],
      [null],
      'camera.internal:22',
      Array.from({ length: 257 }, (_, i) => ({ proto: 'tcp', host: `c${i}.internal:22` })),
    ]) {
      assert.throws(() => checkInternalEndpoints({ endpoints: [], raw }), /GW_ERR_MESSAGE_MALFORMED|malformed internal endpoints/, JSON.stringify(raw).slice(0, 80))
    }
  })

  it('the stream line and TCP_HEAD hops are checked', () => {
    assert.ok(INTERNAL_RAW_TARGET_PATTERN.test('tcp://camera.internal:22'))
    assert.ok(INTERNAL_RAW_TARGET_PATTERN.test('tls://db.cust1.internal:443'))
    for (const line of ['tcp://camera.internal', 'http://camera.internal:22', 'tcp://camera.example.com:22', 'tcp://camera.internal:22/x', 'camera.internal:22']) {
      assert.ok(!INTERNAL_RAW_TARGET_PATTERN.test(line), line)
    }
    assert.equal(checkTcpHead({ ...head, tunnel: 'tcp://camera.internal:22', hops: 2 }).hops, 2)
    for (const hops of [-1, 1.5, 65, '1']) assert.throws(() => checkTcpHead({ ...head, hops }), /malformed tcp head/)
  })
})
