/**
 * A connected `ws` WebSocket as a byte Duplex for the yamux session.
 *
 * Message boundaries mean nothing to yamux: one message may hold many frames and a
 * frame may span messages, since the frame decoder takes any chunking. That frees the
 * writer to batch: everything the session writes in one tick (it corks the transport)
 * arrives here as one `_writev`, and small pieces are joined into one message while
 * large payloads go out as their own message, uncopied.
 *
 * Backpressure: a write completes at once while ws holds little unsent data, and
 * otherwise only when ws has handed the last message to the socket. On the read side
 * the socket is paused while the session does not read.
 */
import { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { WebSocket, type RawData } from 'ws'
import { MuxError } from '../errors.js'

export interface WebSocketTransportOptions {
  /** Unsent bytes in ws above which writes wait for the socket; default 1 MiB. */
  highWaterMark?: number
}

/** Pieces at least this large travel as their own message instead of being copied into a batch. */
const OWN_MESSAGE_SIZE = 64 * 1024
/** A batch of small pieces is sent once it reaches this size. */
const BATCH_SIZE = 256 * 1024

const CLOSE_NORMAL = 1000

class WebSocketTransport extends Duplex {
  private readonly ws: WebSocket
  private readonly highWaterMark: number

  constructor(ws: WebSocket, options: WebSocketTransportOptions) {
    super({ allowHalfOpen: false, writableHighWaterMark: 256 * 1024, readableHighWaterMark: 256 * 1024 })
    this.ws = ws
    this.highWaterMark = options.highWaterMark ?? 1024 * 1024
    ws.on('message', this.onMessage)
    ws.on('close', this.onClose)
    ws.on('error', this.onError)
    // A WebSocket that closed before we were attached will never say so again.
    if (ws.readyState === WebSocket.CLOSED) process.nextTick(this.onClose)
  }

  private onMessage = (data: RawData, isBinary: boolean): void => {
    if (!isBinary) {
      this.destroy(new MuxError('GW_ERR_MUX_PROTOCOL', 'the peer sent a text WebSocket message on the tunnel link'))
      return
    }
    let more = true
    if (Buffer.isBuffer(data)) more = this.push(data)
    else if (Array.isArray(data)) for (const part of data) more = this.push(part)
    else more = this.push(Buffer.from(data))
    if (!more) this.ws.pause()
  }

  private onClose = (): void => {
    this.push(null)
  }

  private onError = (err: Error): void => {
    this.destroy(err)
  }

  override _read(): void {
    this.ws.resume()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.send([chunk], callback)
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    const buffers = new Array<Buffer>(chunks.length)
    for (let i = 0; i < chunks.length; i++) buffers[i] = chunks[i]!.chunk
    this.send(buffers, callback)
  }

  override _final(callback: (err?: Error | null) => void): void {
    const ws = this.ws
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(CLOSE_NORMAL)
    callback()
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const ws = this.ws
    ws.off('message', this.onMessage)
    if (ws.readyState === WebSocket.OPEN) {
      if (err) ws.terminate()
      else ws.close(CLOSE_NORMAL)
    } else if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate()
    }
    callback(err)
  }

  private send(buffers: Buffer[], callback: (err?: Error | null) => void): void {
    const ws = this.ws
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.once('open', () => this.send(buffers, callback))
      return
    }
    if (ws.readyState !== WebSocket.OPEN) {
      callback(new MuxError('GW_ERR_MUX_CLOSED', 'the WebSocket is not open'))
      return
    }
    // ws writes each message with its own uncork; corking the socket around the batch
    // turns all of them into one writev.
    const socket = (ws as unknown as { _socket?: Socket })._socket
    socket?.cork()
    let batch: Buffer[] = []
    let batchBytes = 0
    const messages: Buffer[] = []
    for (const buf of buffers) {
      if (buf.length >= OWN_MESSAGE_SIZE) {
        if (batchBytes > 0) messages.push(join(batch, batchBytes))
        batch = []
        batchBytes = 0
        messages.push(buf)
        continue
      }
      batch.push(buf)
      batchBytes += buf.length
      if (batchBytes >= BATCH_SIZE) {
        messages.push(join(batch, batchBytes))
        batch = []
        batchBytes = 0
      }
    }
    if (batchBytes > 0) messages.push(join(batch, batchBytes))
    const last = messages.pop()
    for (const message of messages) ws.send(message, { binary: true })
    const wait = last !== undefined && ws.bufferedAmount + last.length >= this.highWaterMark
    if (last !== undefined) {
      if (wait) ws.send(last, { binary: true }, (err) => callback(err ?? null))
      else ws.send(last, { binary: true })
    }
    socket?.uncork()
    if (!wait) callback()
  }
}

function join(parts: Buffer[], bytes: number): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes)
}

/**
 * Adapt a connected WebSocket (from `ws`) to the Duplex a yamux Session runs over.
 * The WebSocket closing ends the Duplex; an error destroys it; ending or destroying the
 * Duplex closes the WebSocket.
 *
 * @example
 * const session = new Session(createWebSocketTransport(ws), { client: true })
 */
export function createWebSocketTransport(ws: WebSocket, options: WebSocketTransportOptions = {}): Duplex {
  return new WebSocketTransport(ws, options)
}
