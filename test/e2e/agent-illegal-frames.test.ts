/**
 * Raw yamux frames in every illegal order at the real agent, from a relay that does not
 * play by the rules (issue 10: no peer input crashes a process, and a relay is a peer).
 * A WebSocket server here plays the relay: it takes the agent's hello, answers with a
 * welcome, then writes frames built from the spec (test/helpers/raw-yamux.ts) on the
 * control stream, on a request stream in each state it can be in, and on stream 0. The
 * agent must tell it why it stopped or keep the link sane (answer a PING), never crash,
 * and close cleanly afterwards.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { encodeJsonMessage, MessageType, PROTOCOL_VERSION } from '@gw/protocol'
import { startAgent } from '@gw/cli/agent/agent'
import { startUpstream, type Upstream } from '../helpers/stack.js'
import { data, F, flagNames, frame, RawPeer, T, TYPE_NAMES } from '../helpers/raw-yamux.js'

type State = 'control' | 'unopened' | 'relay-opened' | 'relay-fin' | 'relay-rst' | 'stream 0'
const STATES: State[] = ['control', 'unopened', 'relay-opened', 'relay-fin', 'relay-rst', 'stream 0']

interface Case { state: State; type: number; flags: number }

describe('raw yamux frames in every illegal order at the agent', () => {
  let upstream: Upstream
  let wss: WebSocketServer
  let url: string
  const peers: Array<(peer: RawPeer) => void> = []
  before(async () => {
    upstream = await startUpstream((_req, res) => res.end('ok'))
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
    await new Promise<void>((resolve) => wss.once('listening', resolve))
    url = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`
    wss.on('connection', (ws: WebSocket) => {
      const take = peers.shift()
      if (take) take(new RawPeer(ws))
      else ws.terminate() // a reconnect after its case ended
    })
  })
  after(async () => {
    await new Promise<void>((resolve) => wss.close(() => resolve()))
    await upstream.close()
  })

  async function run(c: Case): Promise<string> {
    const connected = new Promise<RawPeer>((resolve) => peers.push(resolve))
    const agentStarted = startAgent({ relay: url, endpoints: [{ upstream: upstream.url }], handshakeTimeout: 5000 })
    const peer = await connected
    await peer.until(() => peer.frames.some((f) => f.streamId === 1 && f.type === T.DATA && f.payload[0] === MessageType.HELLO), 'the hello')
    const welcome = encodeJsonMessage(MessageType.WELCOME, { version: PROTOCOL_VERSION, endpoints: [{ name: 'rogue', urls: ['http://rogue.localhost'] }], heartbeatTimeout: 15_000 })
    peer.send(data(F.ACK, 1, welcome))
    const agent = await agentStarted
    try {
      let id = 2
      if (c.state === 'control') id = 1
      if (c.state === 'stream 0') id = 0
      if (c.state === 'relay-opened') peer.send(frame(T.WINDOW_UPDATE, F.SYN, 2, 0))
      if (c.state === 'relay-fin') peer.send(frame(T.WINDOW_UPDATE, F.SYN | F.FIN, 2, 0))
      if (c.state === 'relay-rst') peer.send(Buffer.concat([frame(T.WINDOW_UPDATE, F.SYN, 2, 0), frame(T.WINDOW_UPDATE, F.RST, 2, 0)]))
      const bytes = c.type === T.DATA ? data(c.flags, id, Buffer.from('junk')) : frame(c.type, c.flags, id, c.type === T.GO_AWAY ? 1 : 0x7)
      return await peer.probe(bytes, id)
    } finally {
      peer.ws.terminate()
      await agent.close()
    }
  }

  it('every case: the agent answers or closes, survives, and closes cleanly', async (t) => {
    const all: Case[] = []
    for (const state of STATES) for (const type of [T.DATA, T.WINDOW_UPDATE, T.PING, T.GO_AWAY]) for (let flags = 0; flags < 16; flags++) all.push({ state, type, flags })
    const outcomes = new Map<string, number>()
    for (let i = 0; i < all.length; i += 8) {
      await Promise.all(all.slice(i, i + 8).map(async (c) => {
        let outcome: string
        try {
          outcome = await run(c)
        } catch (err) {
          throw new Error(`${c.state}: ${TYPE_NAMES[c.type]} ${flagNames(c.flags)}: ${(err as Error).message}`)
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      }))
    }
    t.diagnostic(`${all.length} cases: ${JSON.stringify(Object.fromEntries(outcomes))}`)
    assert.ok((outcomes.get('closed') ?? 0) > all.length / 4, `outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  })
})
