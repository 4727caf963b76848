/**
 * MessageWriter, the one encoder, against MessageReader, the one decoder, over real yamux
 * streams: every message kind round-trips, and ABORT is decoded once, the same way,
 * whether it replaces a head or cuts a body short.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  decodeJson,
  encodeMessageHeader,
  GwError,
  MessageReader,
  MessageType,
  MessageWriter,
  type Stream,
} from '@gw/protocol'
import { nextStream, readAll, sessionPair } from './mux-helpers.js'

const RESPONSE = { status: 200, statusMessage: 'OK', rawHeaders: ['Content-Type', 'text/plain'] }

async function streamPair(t: { after(fn: () => unknown): void }): Promise<{ out: MessageWriter; reader: MessageReader; local: Stream; remote: Stream }> {
  const pair = await sessionPair('net')
  t.after(() => pair.close())
  const accepted = nextStream(pair.server)
  const local = pair.client.open()
  local.on('error', () => {})
  const out = new MessageWriter(local)
  // The peer only learns of a stream once something is sent on it.
  out.continue()
  const remote = await accepted
  remote.on('error', () => {})
  const reader = new MessageReader(remote)
  const first = await reader.next()
  assert.equal(first?.type, MessageType.CONTINUE)
  return { out, reader, local, remote }
}

function nextError(reader: MessageReader): Promise<GwError> {
  return new Promise((resolve, reject) =>
    reader.nextMessage((err, message) => (err ? resolve(err as GwError) : reject(new Error(`got message type ${message?.type}`)))),
  )
}

describe('MessageWriter → MessageReader', () => {
  it('a response head, body pieces and END with trailers', async (t) => {
    const { out, reader } = await streamPair(t)
    out.responseHead(RESPONSE)
    out.data(Buffer.from('hello, '))
    out.data(Buffer.alloc(0))
    out.data(Buffer.from('world'))
    out.end(['X-Sum', '42'])
    const head = await reader.next()
    assert.equal(head?.type, MessageType.RESPONSE_HEAD)
    assert.deepEqual(decodeJson(head.payload, 'response head'), RESPONSE)
    const body = reader.body()
    assert.equal((await readAll(body)).toString(), 'hello, world')
    assert.deepEqual(body.trailers, ['X-Sum', '42'])
    assert.equal(await reader.next(), null)
  })

  it('a response without a body is head and END', async (t) => {
    const { out, reader } = await streamPair(t)
    out.responseWithoutBody(RESPONSE)
    await reader.next()
    const body = reader.body()
    assert.equal((await readAll(body)).length, 0)
    assert.deepEqual(body.trailers, [])
  })

  it('an error answer carries its code in the head', async (t) => {
    const { out, reader } = await streamPair(t)
    out.error('GW_ERR_UPSTREAM_TIMEOUT', 'the upstream did not answer', 504)
    const head = await reader.next()
    assert.deepEqual(decodeJson(head!.payload, 'response head'), {
      status: 504, rawHeaders: [], error: { code: 'GW_ERR_UPSTREAM_TIMEOUT', message: 'the upstream did not answer' },
    })
  })

  it('ABORT instead of a head fails the reader with the code', async (t) => {
    const { out, reader } = await streamPair(t)
    out.abort('GW_ERR_UPSTREAM_REFUSED', 'connection refused')
    const err = await nextError(reader)
    assert.ok(err instanceof GwError)
    assert.equal(err.code, 'GW_ERR_UPSTREAM_REFUSED')
    assert.equal(err.message, 'connection refused')
  })

  it('ABORT in a body fails the body with the code', async (t) => {
    const { out, reader } = await streamPair(t)
    out.responseHead(RESPONSE)
    out.data(Buffer.from('partial'))
    out.abort('GW_ERR_UPSTREAM_FAILED', 'reset by the upstream')
    await reader.next()
    await assert.rejects(readAll(reader.body()), (e: GwError) => e.code === 'GW_ERR_UPSTREAM_FAILED' && e.message === 'reset by the upstream')
  })

  it('an ABORT whose code is not a gw code becomes GW_ERR_UPSTREAM_FAILED; a malformed one is malformed', async (t) => {
    const first = await streamPair(t)
    first.local.end(Buffer.concat([encodeMessageHeader(MessageType.ABORT, 0).subarray(0, 1), jsonLength({ code: 'EVIL', message: 'x' })]))
    assert.equal((await nextError(first.reader)).code, 'GW_ERR_UPSTREAM_FAILED')
    const second = await streamPair(t)
    const bad = Buffer.from('{not json')
    second.local.end(Buffer.concat([encodeMessageHeader(MessageType.ABORT, bad.length), bad]))
    assert.equal((await nextError(second.reader)).code, 'GW_ERR_MESSAGE_MALFORMED')
  })

  it('control messages: hello, welcome, notice, refuse', async (t) => {
    const { out, reader } = await streamPair(t)
    const hello = { version: 1, authtoken: 't', agentId: 'a', client: 'gw', endpoints: [] }
    const welcome = { version: 1, endpoints: [], heartbeatTimeout: 15_000 }
    out.hello(hello)
    out.welcome(welcome)
    out.notice({ code: 'GW_ERR_REPLACED', message: 'replaced' })
    out.refuse({ code: 'GW_ERR_AUTH_INVALID', message: 'no' })
    const got = []
    for (let m = await reader.next(); m; m = await reader.next()) got.push([m.type, decodeJson(m.payload, 'control')])
    assert.deepEqual(got, [
      [MessageType.HELLO, hello],
      [MessageType.WELCOME, welcome],
      [MessageType.NOTICE, { code: 'GW_ERR_REPLACED', message: 'replaced' }],
      [MessageType.REFUSE, { code: 'GW_ERR_AUTH_INVALID', message: 'no' }],
    ])
  })
})

/** A 4-byte length and a JSON payload: the rest of a message after its type byte. */
function jsonLength(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(json.length)
  return Buffer.concat([length, json])
}
