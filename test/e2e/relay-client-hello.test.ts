/**
 * The ClientHello reader the relay's HTTPS listener uses to spot TLS-ALPN-01 validations,
 * fed real ClientHellos from node's TLS client: whole, cut short, split across records,
 * and garbled.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { connect } from 'node:tls'
import { parseClientHello } from '@gw/relay/acme/client-hello'

async function captureHello(options: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  let resolveHello!: (b: Buffer) => void
  const got = new Promise<Buffer>((r) => (resolveHello = r))
  const server = createServer((socket) => {
    let buf = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        resolveHello(buf)
        socket.destroy()
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ...options })
  client.on('error', () => {})
  const hello = await got
  client.destroy()
  await new Promise((r) => server.close(r))
  return hello
}

/** The same handshake message re-framed as one record per `size` bytes. */
function reframe(record: Buffer, size: number): Buffer {
  const body = record.subarray(5)
  const out: Buffer[] = []
  for (let i = 0; i < body.length; i += size) {
    const piece = body.subarray(i, i + size)
    const head = Buffer.from([0x16, record[1]!, record[2]!, 0, 0])
    head.writeUInt16BE(piece.length, 3)
    out.push(head, piece)
  }
  return Buffer.concat(out)
}

it('reads the server name and ALPN list of a real ClientHello', async () => {
  const hello = await captureHello({ servername: 'App.Example.COM', ALPNProtocols: ['acme-tls/1', 'h2'] })
  const parsed = parseClientHello(hello)
  assert.deepEqual(parsed, { kind: 'hello', info: { servername: 'app.example.com', alpn: ['acme-tls/1', 'h2'] } })
})

it('has no server name or ALPN when the client sends none', async () => {
  const hello = await captureHello({})
  assert.deepEqual(parseClientHello(hello), { kind: 'hello', info: { servername: undefined, alpn: [] } })
})

it('asks for more on every prefix, and reads a ClientHello split across records of 1, 3, 4 and 100 bytes', async () => {
  const hello = await captureHello({ servername: 'x.test', ALPNProtocols: ['http/1.1'] })
  for (let n = 0; n < hello.length; n++) assert.equal(parseClientHello(hello.subarray(0, n)).kind, 'more', `prefix ${n}`)
  for (const size of [1, 3, 4, 100]) {
    const split = reframe(hello, size)
    assert.deepEqual(parseClientHello(split), { kind: 'hello', info: { servername: 'x.test', alpn: ['http/1.1'] } }, `records of ${size}`)
    assert.equal(parseClientHello(split.subarray(0, split.length - 1)).kind, 'more')
  }
})

it('calls anything else invalid, and never throws on garbled bytes', async () => {
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).kind, 'invalid')
  assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).kind, 'invalid')
  const hello = await captureHello({ servername: 'x.test', ALPNProtocols: ['h2'] })
  let seed = 7
  for (let i = 0; i < 2000; i++) {
    const copy = Buffer.from(hello)
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    copy[9 + (seed % (copy.length - 9))] = seed & 0xff
    const parsed = parseClientHello(copy)
    assert.ok(['hello', 'invalid', 'more'].includes(parsed.kind))
  }
})
