/**
 * One client connection to a tcp or tls endpoint, carried on one yamux stream to the
 * agent: a TCP_HEAD message, then the connection's bytes both ways, piped with
 * backpressure (a client that does not read closes the stream's window, and the agent
 * stops reading its upstream).
 *
 * Ends map one to one: the client's FIN is the stream's FIN (the agent half-closes the
 * upstream) and the stream's FIN is a FIN to the client, so half-closed protocols work;
 * a reset on either side resets the other (`resetAndDestroy`, an RST to the client).
 */
import type { Socket } from 'node:net'
import { MessageWriter, type Stream, type TcpHead } from '@gw/protocol'

/** How the connection ended, with the client socket's byte counts. */
export type TcpEnd = (result: 'ok' | 'reset', bytesIn: number, bytesOut: number) => void

export function relayTcp(socket: Socket, stream: Stream, head: TcpHead, onEnd?: TcpEnd): void {
  let reset = false
  // The stream may be reset by the agent (its upstream refused or reset) at any time.
  stream.on('error', () => {
    reset = true
    if (!socket.destroyed) socket.resetAndDestroy()
  })
  socket.on('error', () => {
    reset = true
    stream.destroy()
  })
  // A clean close of the client's socket means both directions ended: the stream's own
  // FIN and queued bytes may still be on their way and are not cut. Anything else resets.
  socket.once('close', (hadError: boolean) => {
    const cut = hadError || !stream.writableEnded
    if (cut) stream.destroy()
    onEnd?.(reset || cut ? 'reset' : 'ok', socket.bytesRead, socket.bytesWritten)
  })
  stream.once('close', () => {
    // The stream went away (the agent's link closed, or both ends finished): a client
    // still connected must not wait on a dead peer for its own timeout.
    if (!socket.destroyed && !stream.readableEnded) socket.resetAndDestroy()
    else if (!socket.writableEnded) socket.end()
  })
  new MessageWriter(stream).tcpHead(head)
  socket.pipe(stream)
  stream.pipe(socket)
}
