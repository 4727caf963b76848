/**
 * Reads the server name (SNI) and the ALPN protocols from a TLS ClientHello, without
 * consuming it, so the relay can tell an ACME TLS-ALPN-01 validation (ALPN `acme-tls/1`,
 * RFC 8737) from an ordinary handshake before any certificate is chosen. Node's
 * SNICallback runs before ALPN is known, so the choice has to be made here.
 *
 * Only the first handshake message is read; it may span several TLS records and TCP
 * segments. Anything malformed is "not a ClientHello we understand": the caller hands
 * the bytes to the TLS server, which rejects them itself.
 */

export interface ClientHelloInfo {
  servername: string | undefined
  alpn: string[]
}

/** A ClientHello larger than this is not waited for (real ones are under 2 KiB; with post-quantum key shares, under 4 KiB). */
export const MAX_CLIENT_HELLO = 16 * 1024

export type ParseResult =
  | { kind: 'more' }
  | { kind: 'invalid' }
  | { kind: 'hello'; info: ClientHelloInfo }

/** `more`: not all of the ClientHello has arrived yet; `invalid`: not a TLS ClientHello. */
export function parseClientHello(buf: Buffer): ParseResult {
  // Gather the handshake bytes out of consecutive handshake records.
  const parts: Buffer[] = []
  let have = 0
  let need = -1
  let offset = 0
  while (need === -1 || have < need) {
    if (buf.length < offset + 5) return { kind: 'more' }
    if (buf[offset] !== 0x16 || buf[offset + 1] !== 0x03) return { kind: 'invalid' }
    const length = buf.readUInt16BE(offset + 3)
    if (length === 0) return { kind: 'invalid' }
    if (buf.length < offset + 5 + length) return { kind: 'more' }
    parts.push(buf.subarray(offset + 5, offset + 5 + length))
    have += length
    offset += 5 + length
    if (need === -1 && have >= 4) {
      // The 4-byte handshake header may itself be split across records: rare, but legal.
      const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
      if (head[0] !== 0x01) return { kind: 'invalid' }
      need = 4 + head.readUIntBE(1, 3)
      if (need > MAX_CLIENT_HELLO) return { kind: 'invalid' }
    }
  }
  const hello = Buffer.concat(parts).subarray(4, need)
  const info = readHello(hello)
  return info ? { kind: 'hello', info } : { kind: 'invalid' }
}

function readHello(b: Buffer): ClientHelloInfo | undefined {
  let p = 2 + 32 // legacy_version, random
  if (b.length < p + 1) return undefined
  p += 1 + b[p]! // session id
  if (b.length < p + 2) return undefined
  p += 2 + b.readUInt16BE(p) // cipher suites
  if (b.length < p + 1) return undefined
  p += 1 + b[p]! // compression methods
  const info: ClientHelloInfo = { servername: undefined, alpn: [] }
  if (b.length === p) return info // no extensions
  if (b.length < p + 2) return undefined
  const end = p + 2 + b.readUInt16BE(p)
  if (end > b.length) return undefined
  p += 2
  while (p + 4 <= end) {
    const type = b.readUInt16BE(p)
    const len = b.readUInt16BE(p + 2)
    const data = b.subarray(p + 4, p + 4 + len)
    if (p + 4 + len > end) return undefined
    p += 4 + len
    if (type === 0x0000) {
      // server_name: list length, then entries of (type 0 = host_name, length, name).
      if (data.length < 2) return undefined
      let q = 2
      while (q + 3 <= data.length) {
        const nameType = data[q]!
        const nameLen = data.readUInt16BE(q + 1)
        if (q + 3 + nameLen > data.length) return undefined
        if (nameType === 0) info.servername = data.subarray(q + 3, q + 3 + nameLen).toString('latin1').toLowerCase()
        q += 3 + nameLen
      }
    } else if (type === 0x0010) {
      // application_layer_protocol_negotiation: list length, then (length, protocol).
      if (data.length < 2) return undefined
      let q = 2
      while (q < data.length) {
        const l = data[q]!
        if (l === 0 || q + 1 + l > data.length) return undefined
        info.alpn.push(data.subarray(q + 1, q + 1 + l).toString('latin1'))
        q += 1 + l
      }
    }
  }
  return p === end ? info : undefined
}
