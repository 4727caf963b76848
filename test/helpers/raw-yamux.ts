/**
 * yamux frames built from the spec (hashicorp/yamux spec.md: version u8, type u8,
 * flags u16, stream id u32, length u32, all big-endian), not with gw's encoder, so an
 * encoder bug cannot hide a decoder bug; and a peer on a WebSocket that writes them raw
 * and parses what comes back.
 */
import { WebSocket } from 'ws'

export const T = { DATA: 0, WINDOW_UPDATE: 1, PING: 2, GO_AWAY: 3 } as const
export const F = { SYN: 1, ACK: 2, FIN: 4, RST: 8 } as const
export const TYPE_NAMES = ['DATA', 'WINDOW_UPDATE', 'PING', 'GO_AWAY']

export function frame(type: number, flags: number, streamId: number, length: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(12)
  h.writeUInt8(0, 0)
  h.writeUInt8(type, 1)
  h.writeUInt16BE(flags, 2)
  h.writeUInt32BE(streamId, 4)
  h.writeUInt32BE(length, 8)
  return Buffer.concat([h, payload])
}

export const data = (flags: number, id: number, payload: Buffer): Buffer => frame(T.DATA, flags, id, payload.length, payload)

export function flagNames(flags: number): string {
  return Object.entries(F).filter(([, bit]) => flags & bit).map(([n]) => n).join('|') || 'no flags'
}

export interface SeenFrame { type: number; flags: number; streamId: number; length: number; payload: Buffer }

export class RawPeer {
  readonly frames: SeenFrame[] = []
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

  send(bytes: Buffer): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes)
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  /** Until `check` holds or the link closes; fails after `ms` (a hang is the bug). */
  async until(check: () => boolean, what: string, ms = 5000): Promise<void> {
    const end = Date.now() + ms
    while (!check() && !this.closed) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50) })
    }
  }

  /**
   * Send `bytes` then a PING, and wait for the peer to say it stopped (a GoAway, an RST
   * on `streamId`, the link closing) or to answer the PING. Returns which.
   */
  async probe(bytes: Buffer, streamId: number): Promise<'closed' | 'reset' | 'tolerated'> {
    const before = this.frames.length
    this.send(Buffer.concat([bytes, frame(T.PING, F.SYN, 0, 0xc0ffee)]))
    const answer = (): SeenFrame[] => this.frames.slice(before)
    await this.until(() => answer().some((f) =>
      f.type === T.GO_AWAY || (f.streamId === streamId && streamId !== 0 && (f.flags & F.RST) !== 0) || (f.type === T.PING && (f.flags & F.ACK) !== 0 && f.length === 0xc0ffee),
    ), 'a go away, an RST or the ping answer')
    if (this.closed || answer().some((f) => f.type === T.GO_AWAY)) return 'closed'
    if (answer().some((f) => f.streamId === streamId && (f.flags & F.RST) !== 0)) return 'reset'
    return 'tolerated'
  }
}
