/**
 * Raw yamux frames in every illegal order, at the real relay (issue 10). The frames are
 * built from the spec by test/helpers/raw-yamux.ts, not with gw's encoder.
 *
 * For each stream state (never opened, opened by the peer, half closed by the peer,
 * reset by the peer, and, after the hello, a request stream the relay opened) and each
 * frame type with each of the 16 flag combinations, before and after the hello, the
 * peer sends the frame and then a PING. The relay must either tell the peer why it
 * stopped (a GoAway, an RST on that stream, or the WebSocket closing) or keep the link
 * sane (answer the PING). Whatever it does, the process survives, a public request that
 * was in flight gets an answer, and once the peer is gone no stream, link or name is left.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { request } from 'undici'
import { WebSocket } from 'ws'
import { startRelay, type Relay } from '@gw/relay'
import { encodeJsonMessage, MessageType, PROTOCOL_VERSION } from '@gw/protocol'
import { tempDir, waitFor } from '../helpers/stack.js'
import { data, F, flagNames, frame, RawPeer, T, TYPE_NAMES } from '../helpers/raw-yamux.js'

async function connect(relay: Relay): Promise<RawPeer> {
  const ws = new WebSocket(`${relay.httpUrl!.replace(/^http/, 'ws')}/_gw/agent`, { perMessageDeflate: false })
  await once(ws, 'open')
  return new RawPeer(ws)
}

/** Stream 1 with a valid hello, then the welcome. */
async function hello(peer: RawPeer, name: string): Promise<void> {
  const message = encodeJsonMessage(MessageType.HELLO, { version: PROTOCOL_VERSION, authtoken: '', agentId: `raw-${name}`, client: 'raw-frames-test', endpoints: [{ name, proto: 'http' }] })
  peer.send(data(F.SYN, 1, message))
  await peer.until(() => peer.frames.some((f) => f.streamId === 1 && f.type === T.DATA && f.payload[0] === MessageType.WELCOME), 'the welcome')
  assert.equal(peer.closed, false, 'the relay accepted the hello')
}
type State = 'unopened' | 'opened' | 'peer-fin' | 'peer-rst' | 'relay-opened'
const STATES: State[] = ['unopened', 'opened', 'peer-fin', 'peer-rst', 'relay-opened']

interface Case { phase: 'pre-hello' | 'post-hello'; state: State; type: number; flags: number; stream: 'target' | 0 }

function cases(): Case[] {
  const out: Case[] = []
  for (const phase of ['pre-hello', 'post-hello'] as const) {
    for (const state of STATES) {
      if (state === 'relay-opened' && phase === 'pre-hello') continue
      for (let flags = 0; flags < 16; flags++) {
        out.push({ phase, state, type: T.DATA, flags, stream: 'target' })
        out.push({ phase, state, type: T.WINDOW_UPDATE, flags, stream: 'target' })
        out.push({ phase, state, type: T.PING, flags, stream: 'target' })
        out.push({ phase, state, type: T.GO_AWAY, flags, stream: 'target' })
      }
    }
    for (let flags = 0; flags < 16; flags++) {
      out.push({ phase, state: 'unopened', type: T.DATA, flags, stream: 0 })
      out.push({ phase, state: 'unopened', type: T.WINDOW_UPDATE, flags, stream: 0 })
      out.push({ phase, state: 'unopened', type: T.PING, flags, stream: 0 })
      out.push({ phase, state: 'unopened', type: T.GO_AWAY, flags, stream: 0 })
    }
  }
  return out
}

function label(c: Case): string {
  const flags = flagNames(c.flags)
  return `${c.phase}, ${c.stream === 0 ? 'stream 0' : `${c.state} stream`}: ${TYPE_NAMES[c.type]} ${flags}`
}

describe('raw yamux frames in every illegal order at the relay', () => {
  let relay: Relay
  let seq = 0
  before(async () => {
    relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: tempDir('gw-frames-') })
  })
  after(() => relay.close())

  async function run(c: Case): Promise<string> {
    const name = `raw${++seq}`
    const peer = await connect(relay)
    let publicAnswer: Promise<unknown> | undefined
    try {
      if (c.phase === 'post-hello') await hello(peer, name)
      else peer.send(data(F.SYN, 1, Buffer.alloc(0)))
      let target = 3
      if (c.state === 'opened') peer.send(frame(T.WINDOW_UPDATE, F.SYN, 3, 0))
      if (c.state === 'peer-fin') peer.send(frame(T.WINDOW_UPDATE, F.SYN | F.FIN, 3, 0))
      if (c.state === 'peer-rst') peer.send(Buffer.concat([frame(T.WINDOW_UPDATE, F.SYN, 3, 0), frame(T.WINDOW_UPDATE, F.RST, 3, 0)]))
      if (c.state === 'relay-opened') {
        // A public request makes the relay open a stream to us; the client must get an answer.
        publicAnswer = request(`${relay.httpUrl}/`, { headers: { host: `${name}.localhost` }, headersTimeout: 10_000, bodyTimeout: 10_000 })
          .then(async (res) => { await res.body.text(); return res.statusCode }, (err: Error) => err)
        await peer.until(() => peer.frames.some((f) => f.streamId % 2 === 0 && f.streamId !== 0 && (f.flags & F.SYN) !== 0), 'the relay to open a stream')
        target = peer.frames.find((f) => f.streamId % 2 === 0 && f.streamId !== 0 && (f.flags & F.SYN) !== 0)!.streamId
      }
      const id = c.stream === 0 ? 0 : target
      const bytes = c.type === T.DATA ? data(c.flags, id, Buffer.from('junk')) : frame(c.type, c.flags, id, c.type === T.GO_AWAY ? 1 : 0x7)
      return await peer.probe(bytes, id)
    } finally {
      peer.ws.terminate()
      if (publicAnswer) {
        const got = await publicAnswer
        assert.ok(typeof got === 'number' || got instanceof Error, 'the public client got an answer')
      }
    }
  }

  it('every case: the relay answers or closes, and nothing is left once the peer is gone', async (t) => {
    const all = cases()
    const outcomes = new Map<string, number>()
    // A few at a time: each case is its own connection.
    for (let i = 0; i < all.length; i += 8) {
      await Promise.all(all.slice(i, i + 8).map(async (c) => {
        let outcome: string
        try {
          outcome = await run(c)
        } catch (err) {
          throw new Error(`${label(c)}: ${(err as Error).message}`)
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      }))
    }
    await waitFor(() => relay.agentCount === 0 && relay.openStreams() === 0 && relay.onlineNames().length === 0, 10_000, 'every link, stream and name to be released')
    const health = await request(`${relay.httpUrl}/healthz`)
    assert.equal(health.statusCode, 200)
    await health.body.text()
    t.diagnostic(`${all.length} cases: ${JSON.stringify(Object.fromEntries(outcomes))}`)
    // Data on a stream 0, a ping on a stream, a SYN for a stream the relay owns: each must close.
    assert.ok((outcomes.get('closed') ?? 0) > all.length / 4, `outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  })
})
