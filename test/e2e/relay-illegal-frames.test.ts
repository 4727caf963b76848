/**
 * Raw yamux frames in every illegal order, at the real relay (issue 10). The frames are
 * built here from the spec (hashicorp/yamux spec.md: version u8, type u8, flags u16,
 * stream id u32, length u32, all big-endian), not with gw's encoder, so an encoder bug
 * cannot hide a decoder bug.
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

const T = { DATA: 0, WINDOW_UPDATE: 1, PING: 2, GO_AWAY: 3 } as const
const F = { SYN: 1, ACK: 2, FIN: 4, RST: 8 } as const

function frame(type: number, flags: number, streamId: number, length: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(12)
  h.writeUInt8(0, 0)
  h.writeUInt8(type, 1)
  h.writeUInt16BE(flags, 2)
  h.writeUInt32BE(streamId, 4)
  h.writeUInt32BE(length, 8)
  return Buffer.concat([h, payload])
}
const data = (flags: number, id: number, payload: Buffer): Buffer => frame(T.DATA, flags, id, payload.length, payload)

interface Seen { type: number; flags: number; streamId: number; length: number; payload: Buffer }

/** A WebSocket peer at /_gw/agent that writes raw frames and parses what comes back. */
class RawPeer {
  readonly frames: Seen[] = []
  closed = false
  private buf = Buffer.alloc(0)
  private waiters: Array<() => void> = []

  constructor(readonly ws: WebSocket) {
    ws.on('message', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk])
      for (;;) {
        if (this.buf.length < 12) break
        const type = this.buf[1]!
        const length = this.buf.readUInt32BE(8)
        const size = type === T.DATA ? 12 + length : 12
        if (this.buf.length < size) break
        this.frames.push({ type, flags: this.buf.readUInt16BE(2), streamId: this.buf.readUInt32BE(4), length, payload: this.buf.subarray(12, size) })
        this.buf = this.buf.subarray(size)
      }
      this.wake()
    })
    ws.on('close', () => { this.closed = true; this.wake() })
    ws.on('error', () => {})
  }

  static async connect(relay: Relay): Promise<RawPeer> {
    const ws = new WebSocket(`${relay.httpUrl!.replace(/^http/, 'ws')}/_gw/agent`, { perMessageDeflate: false })
    await once(ws, 'open')
    return new RawPeer(ws)
  }

  send(bytes: Buffer): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes)
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  /** Until `check` holds or the link closes; fails after 5 s (a hang is the bug). */
  async until(check: () => boolean, what: string): Promise<void> {
    const end = Date.now() + 5000
    while (!check() && !this.closed) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50) })
    }
  }

  /** Stream 1 with a valid hello, then the welcome. */
  async hello(name: string): Promise<void> {
    const hello = encodeJsonMessage(MessageType.HELLO, { version: PROTOCOL_VERSION, authtoken: '', agentId: `raw-${name}`, client: 'raw-frames-test', endpoints: [{ name, proto: 'http' }] })
    this.send(data(F.SYN, 1, hello))
    await this.until(() => this.frames.some((f) => f.streamId === 1 && f.type === T.DATA && f.payload[0] === MessageType.WELCOME), 'the welcome')
    assert.equal(this.closed, false, 'the relay accepted the hello')
    // Give back the window the welcome used, as a well-behaved agent would.
  }
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

const TYPE_NAMES = ['DATA', 'WINDOW_UPDATE', 'PING', 'GO_AWAY']
function label(c: Case): string {
  const flags = Object.entries(F).filter(([, bit]) => c.flags & bit).map(([n]) => n).join('|') || 'no flags'
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
    const peer = await RawPeer.connect(relay)
    let publicAnswer: Promise<unknown> | undefined
    try {
      if (c.phase === 'post-hello') await peer.hello(name)
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
      const before = peer.frames.length
      const bytes = c.type === T.DATA ? data(c.flags, id, Buffer.from('junk')) : frame(c.type, c.flags, id, c.type === T.GO_AWAY ? 1 : 0x7)
      peer.send(Buffer.concat([bytes, frame(T.PING, F.SYN, 0, 0xc0ffee)]))
      await peer.until(() => peer.frames.slice(before).some((f) =>
        f.type === T.GO_AWAY || (f.streamId === id && id !== 0 && (f.flags & F.RST) !== 0) || (f.type === T.PING && (f.flags & F.ACK) !== 0 && f.length === 0xc0ffee),
      ), 'a go away, an RST or the ping answer')
      const answer = peer.frames.slice(before)
      if (peer.closed || answer.some((f) => f.type === T.GO_AWAY)) return 'closed'
      if (answer.some((f) => f.streamId === id && (f.flags & F.RST) !== 0)) return 'reset'
      return 'tolerated'
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
