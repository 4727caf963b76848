/**
 * Before its hello, a connection to /_gw/agent is anyone's: the relay bounds what it
 * holds for it. 40 peers that each open streams and fill their windows without ever
 * sending a hello (the probe took the relay from 118 MB to 2.7 GB) must cost
 * the real `gw relay` process at most 64 KiB each.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { once } from 'node:events'
import { WebSocket } from 'ws'
import { spawnRelay, tempDir, type SpawnedRelay } from '../helpers/stack.js'

const KiB = 1024
const PEERS = 40
/** Each peer: the control stream and 7 more, each filled to its 256 KiB window. */
const STREAMS = 8
const PER_STREAM = 256 * KiB

/** A yamux frame built from the spec (version 0, type, flags, stream id, length), not by gw's encoder. */
function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(12)
  header.writeUInt8(0, 0)
  header.writeUInt8(type, 1)
  header.writeUInt16BE(flags, 2)
  header.writeUInt32BE(streamId, 4)
  header.writeUInt32BE(type === 0 || payload.length > 0 ? payload.length : 0, 8)
  return Buffer.concat([header, payload])
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * KiB
}

describe('pre-auth bounds at the relay', () => {
  let relay: SpawnedRelay
  let port: number
  let dir: string

  before(async () => {
    dir = tempDir()
    relay = await spawnRelay({ workers: 1, stateDir: dir }) // one process: its RSS is what is measured
    port = relay.httpPort
  })
  after(async () => {
    await relay?.stop() // unset if it did not start
    rmSync(dir, { recursive: true, force: true })
  })

  it(`holds at most 64 KiB for each of ${PEERS} connections that never send a hello`, async (t) => {
    // Warm the relay up with one such connection, so that first-use allocations do not count.
    const baseline = async (): Promise<number> => {
      await new Promise((r) => setTimeout(r, 500))
      return rssOf(relay.child.pid!)
    }
    const chunk = Buffer.alloc(16 * KiB, 0x41)
    const flood = async (): Promise<WebSocket> => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/_gw/agent`, { perMessageDeflate: false })
      ws.on('error', () => {})
      await once(ws, 'open')
      for (let s = 0; s < STREAMS; s++) {
        const id = 1 + 2 * s
        const frames = [frame(1, 0x1, id)]
        for (let sent = 0; sent < PER_STREAM; sent += chunk.length) frames.push(frame(0, 0, id, chunk))
        if (ws.readyState !== WebSocket.OPEN) break
        ws.send(Buffer.concat(frames))
      }
      return ws
    }
    ;(await flood()).terminate()
    const before = await baseline()
    const peers = await Promise.all(Array.from({ length: PEERS }, flood))
    // Let the relay read what it was sent.
    await new Promise((r) => setTimeout(r, 1500))
    const during = rssOf(relay.child.pid!)
    for (const ws of peers) ws.terminate()
    const grew = during - before
    t.diagnostic(`relay RSS grew ${(grew / 1024).toFixed(0)} KiB for ${PEERS} unauthenticated peers`)
    assert.ok(
      grew <= PEERS * 64 * KiB + 8 * 1024 * KiB,
      `the relay grew ${(grew / 1024 / 1024).toFixed(1)} MiB for ${PEERS} unauthenticated peers (bound ${PEERS} × 64 KiB + 8 MiB of allocator slack)`,
    )
    // And it is still up.
    const res = await fetch(`http://127.0.0.1:${port}/healthz`)
    assert.equal(res.status, 200)
  })
})
