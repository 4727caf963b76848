/**
 * A connection handed by forward-internal to another agent's tcp or tls internal
 * endpoint, through the relay (relay/internal-endpoints.ts):
 *
 *   client ─▶ relay ─stream─▶ this agent ─stream "tcp://camera.internal:22\n" + TCP_HEAD─▶ relay ─splice─▶ other agent
 *
 * The new stream's line has been written (remote-internal.ts); this writes the TCP_HEAD
 * (the original client's address, `tunnel` the internal endpoint's URL, `hops` counted),
 * the bytes that came with the first head, then pipes both ways. The other agent runs
 * the internal endpoint's on_tcp_connect and dials its upstream. Ends map one to one as
 * in tcp-forward.ts: a FIN half-closes the other side, a reset resets it.
 */
import type { Duplex } from 'node:stream'
import { MessageWriter, type TcpHead } from '@gw/protocol'

export function spliceToRemoteInternal(stream: Duplex, early: Buffer, head: TcpHead, remote: Duplex): void {
  remote.on('error', () => {
    if (!stream.destroyed) stream.destroy()
  })
  stream.on('error', () => {
    if (!remote.destroyed) remote.destroy()
  })
  // A side that closes without finishing both ways resets the other.
  stream.once('close', () => {
    if (!(stream.readableEnded && stream.writableFinished)) remote.destroy()
  })
  remote.once('close', () => {
    if (!(remote.readableEnded && remote.writableFinished)) stream.destroy()
  })
  new MessageWriter(remote).tcpHead(head)
  if (early.length > 0) remote.write(early)
  stream.pipe(remote)
  remote.pipe(stream)
  // The client's FIN may already have come with the head.
  if (stream.readableEnded) remote.end()
  stream.resume()
}
