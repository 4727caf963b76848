/**
 * The `compress` content coding (RFC 9110 §8.4.1.1): Unix compress's LZW, the `.Z`
 * format, as ncompress writes it, so `gzip -d` and `uncompress` read it. ngrok's
 * compress-response offers it beside gzip, br and deflate.
 *
 * Block mode with 16-bit codes: the header is 1F 9D 90; codes start at 9 bits; 256 is
 * CLEAR and 257 the first free entry. Codes are packed LSB first in groups of eight; when
 * the code width grows, or after a CLEAR, the current group is padded out to its full
 * n_bits bytes, which is what decoders expect (ncompress's output(), gzip's unlzw). When
 * the table is full it is cleared (ncompress clears when the ratio drops; any CLEAR is
 * valid). The format has no flush, so a group leaves only when it is full: a trickling
 * stream is held back by at most 16 bytes of output.
 */
import { Transform, type TransformCallback } from 'node:stream'

const MAX_BITS = 16
const MAX_MAX_CODE = 1 << MAX_BITS
const CLEAR = 256
const FIRST = 257

export function createLzwCompress(): Transform {
  let table = new Map<number, number>()
  let nBits = 9
  let maxCode = (1 << nBits) - 1
  let freeEnt = FIRST
  let clearFlag = false
  let ent = -1
  let headerSent = false
  // The group being filled: up to 8 codes of nBits bits, LSB first.
  let group = Buffer.alloc(MAX_BITS)
  let offset = 0
  let out: Buffer[] = []

  function output(code: number): void {
    // Put `code` at bit `offset` of the group.
    let bits = nBits
    let c = code
    let at = offset
    while (bits > 0) {
      const byte = at >> 3
      const shift = at & 7
      const take = Math.min(8 - shift, bits)
      group[byte] = (group[byte]! & ((1 << shift) - 1)) | ((c & ((1 << take) - 1)) << shift)
      c >>= take
      bits -= take
      at += take
    }
    offset += nBits
    if (offset === nBits * 8) {
      out.push(Buffer.from(group.subarray(0, nBits)))
      group = Buffer.alloc(MAX_BITS)
      offset = 0
    }
    // The next code will not fit, or a CLEAR went out: pad the group to its full size and change width.
    if (freeEnt > maxCode || clearFlag) {
      if (offset > 0) {
        out.push(Buffer.from(group.subarray(0, nBits)))
        group = Buffer.alloc(MAX_BITS)
        offset = 0
      }
      if (clearFlag) {
        nBits = 9
        maxCode = (1 << nBits) - 1
        clearFlag = false
      } else {
        nBits++
        maxCode = nBits === MAX_BITS ? MAX_MAX_CODE : (1 << nBits) - 1
      }
    }
  }

  function take(): Buffer | undefined {
    if (out.length === 0) return undefined
    const b = out.length === 1 ? out[0]! : Buffer.concat(out)
    out = []
    return b
  }

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (!headerSent) {
        headerSent = true
        out.push(Buffer.from([0x1f, 0x9d, 0x80 | MAX_BITS]))
      }
      for (const c of chunk) {
        if (ent === -1) {
          ent = c
          continue
        }
        const key = ent * 256 + c
        const hit = table.get(key)
        if (hit !== undefined) {
          ent = hit
          continue
        }
        output(ent)
        ent = c
        if (freeEnt < MAX_MAX_CODE) {
          table.set(key, freeEnt++)
        } else {
          // The table is full: start again.
          table = new Map()
          freeEnt = FIRST
          clearFlag = true
          output(CLEAR)
        }
      }
      cb(null, take())
    },
    flush(cb: TransformCallback) {
      if (!headerSent) out.push(Buffer.from([0x1f, 0x9d, 0x80 | MAX_BITS]))
      if (ent !== -1) output(ent)
      if (offset > 0) out.push(Buffer.from(group.subarray(0, (offset + 7) >> 3)))
      cb(null, take())
    },
  })
}
