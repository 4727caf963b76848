/**
 * Counts WebSocket messages in a byte stream (RFC 6455 §5.2) without buffering it, so
 * the inspector can show one entry per connection with message counts each way.
 * A message is complete at a frame with FIN set and a data or continuation opcode;
 * control frames (ping, pong, close) are not counted.
 */
export function countWebSocketFrames(_fromClient: boolean): (chunk: Buffer) => number {
  // Header bytes still needed, and the header collected so far.
  const header = Buffer.alloc(14)
  let have = 0
  let skip = 0 // payload bytes still to pass over
  return function count(chunk: Buffer): number {
    let messages = 0
    let offset = 0
    while (offset < chunk.length) {
      if (skip > 0) {
        const take = Math.min(skip, chunk.length - offset)
        skip -= take
        offset += take
        continue
      }
      header[have++] = chunk[offset++]!
      if (have < 2) continue
      const len7 = header[1]! & 0x7f
      const masked = (header[1]! & 0x80) !== 0
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0)
      if (have < need) continue
      let length = len7
      if (len7 === 126) length = header.readUInt16BE(2)
      else if (len7 === 127) length = Number(header.readBigUInt64BE(2))
      const fin = (header[0]! & 0x80) !== 0
      const opcode = header[0]! & 0x0f
      if (fin && opcode <= 2) messages++
      skip = length
      have = 0
    }
    return messages
  }
}
