/**
 * ngrok's macro families beyond CEL's standard library (traffic-policy/macros): `hash.*`,
 * `base64.*`, `json.*`, `url.*`, `queryString.*`, `basic_auth.encode`, `strings.quote`
 * and their `string.…()` forms. cel.ts registers them; the receivers (`hash`, `json`…)
 * are markers on the evaluation root, as `rand` is.
 *
 * Results follow ngrok's examples: hashes are lower-case hex unless the format is
 * `base64`; `url.parse` gives Go's net/url field names (`scheme`, `host`, `path`,
 * `raw_query`…); a JSON number is a CEL double or int as JavaScript reads it.
 */
import { createHash } from 'node:crypto'

export class HashMacros {}
export class Base64Macros {}
export class JsonMacros {}
export class UrlMacros {}
export class QueryStringMacros {}
export class BasicAuthMacros {}
export class StringsMacros {}
export class ListsMacros {}

export const MACRO_RECEIVERS = {
  hash: new HashMacros(), base64: new Base64Macros(), json: new JsonMacros(), url: new UrlMacros(),
  queryString: new QueryStringMacros(), basic_auth: new BasicAuthMacros(), strings: new StringsMacros(),
  lists: new ListsMacros(),
}

type Format = 'hex' | 'base64'

function format(f: string | undefined): Format {
  if (f === undefined || f === 'hex') return 'hex'
  if (f === 'base64') return 'base64'
  throw new Error(`the hash format must be "hex" or "base64", got ${JSON.stringify(f)}`)
}

export function digest(algorithm: 'md5' | 'sha1' | 'sha256' | 'sha512', text: string, f?: string): string {
  return createHash(algorithm).update(text, 'utf8').digest(format(f))
}

// CRC-32 (IEEE) and CRC-64 (ISO, Go's crc64.ISO table, which ngrok's examples match), table-driven.
const CRC32 = new Uint32Array(256).map((_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
const CRC64_POLY = 0xd800000000000000n
const CRC64 = Array.from({ length: 256 }, (_, n) => {
  let c = BigInt(n)
  for (let k = 0; k < 8; k++) c = c & 1n ? CRC64_POLY ^ (c >> 1n) : c >> 1n
  return c
})

function asBytes(n: bigint, width: number): Buffer {
  const out = Buffer.alloc(width)
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn)
    n >>= 8n
  }
  return out
}

export function crc32(text: string, f?: string): string {
  let c = 0xffffffff
  for (const b of Buffer.from(text, 'utf8')) c = CRC32[(c ^ b) & 0xff]! ^ (c >>> 8)
  const sum = BigInt((c ^ 0xffffffff) >>> 0)
  return format(f) === 'hex' ? sum.toString(16).padStart(8, '0') : asBytes(sum, 4).toString('base64')
}

export function crc64(text: string, f?: string): string {
  let c = 0xffffffffffffffffn
  for (const b of Buffer.from(text, 'utf8')) c = CRC64[Number((c ^ BigInt(b)) & 0xffn)]! ^ (c >> 8n)
  const sum = c ^ 0xffffffffffffffffn
  return format(f) === 'hex' ? sum.toString(16).padStart(16, '0') : asBytes(sum, 8).toString('base64')
}

/** XXH64 with seed 0 (the xxhash64 that Go's cespare/xxhash computes). */
export function xxhash64(text: string, f?: string): string {
  const M = 0xffffffffffffffffn
  const P1 = 11400714785074694791n, P2 = 14029467366897019727n, P3 = 1609587929392839161n, P4 = 9650029242287828579n, P5 = 2870177450012600261n
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M
  const round = (acc: bigint, lane: bigint) => (rotl((acc + lane * P2) & M, 31n) * P1) & M
  const merge = (acc: bigint, v: bigint) => (((acc ^ round(0n, v)) * P1) & M) + P4 & M
  const buf = Buffer.from(text, 'utf8')
  const len = buf.length
  let i = 0
  let h: bigint
  if (len >= 32) {
    let v1 = (P1 + P2) & M, v2 = P2, v3 = 0n, v4 = (0n - P1) & M
    for (; i + 32 <= len; i += 32) {
      v1 = round(v1, buf.readBigUInt64LE(i))
      v2 = round(v2, buf.readBigUInt64LE(i + 8))
      v3 = round(v3, buf.readBigUInt64LE(i + 16))
      v4 = round(v4, buf.readBigUInt64LE(i + 24))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M
    h = merge(h, v1); h = merge(h, v2); h = merge(h, v3); h = merge(h, v4)
  } else {
    h = P5
  }
  h = (h + BigInt(len)) & M
  for (; i + 8 <= len; i += 8) h = ((rotl(h ^ round(0n, buf.readBigUInt64LE(i)), 27n) * P1) & M) + P4 & M
  if (i + 4 <= len) {
    h = ((rotl(h ^ ((BigInt(buf.readUInt32LE(i)) * P1) & M), 23n) * P2) & M) + P3 & M
    i += 4
  }
  for (; i < len; i++) h = (rotl(h ^ ((BigInt(buf[i]!) * P5) & M), 11n) * P1) & M
  h ^= h >> 33n
  h = (h * P2) & M
  h ^= h >> 29n
  h = (h * P3) & M
  h ^= h >> 32n
  return format(f) === 'hex' ? h.toString(16).padStart(16, '0') : asBytes(h, 8).toString('base64')
}

/** JSON text to CEL values: objects become maps, numbers stay numbers (CEL reads them as dyn). */
export function jsonDecode(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new Error(`json.decode: not JSON: ${(err as Error).message}`)
  }
}

/** CEL values to JSON text: bigints (CEL ints) as numbers, Maps as objects. */
export function jsonEncode(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return Number(v)
    if (v instanceof Map) return Object.fromEntries(v)
    if (v instanceof Set) return [...v]
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64')
    return v
  })
}

export function isJson(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** Go's url.QueryEscape: spaces become +, everything but unreserved characters is %XX. */
export function urlEscape(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, '+')
}

export function urlUnescape(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    throw new Error(`url.unescape: invalid percent-encoding in ${JSON.stringify(text.slice(0, 60))}`)
  }
}

/** Go's net/url.URL fields, by their lower-case names (ngrok's url.parse). */
export function urlParse(text: string): Record<string, unknown> {
  let u: URL
  try {
    u = new URL(text)
  } catch {
    throw new Error(`url.parse: not a URL: ${JSON.stringify(text.slice(0, 60))}`)
  }
  return {
    scheme: u.protocol.replace(/:$/, ''),
    host: u.host,
    hostname: u.hostname,
    port: u.port,
    path: decodeURIComponent(u.pathname),
    raw_path: u.pathname,
    raw_query: u.search.replace(/^\?/, ''),
    fragment: u.hash.replace(/^#/, ''),
    user: u.username ? (u.password ? `${u.username}:${u.password}` : u.username) : '',
    query: queryDecode(u.search.replace(/^\?/, '')),
  }
}

export function isUrl(text: string): boolean {
  try {
    const u = new URL(text)
    return u.protocol !== '' && u.host !== ''
  } catch {
    return false
  }
}

/** `a=1&a=2&b=x` → {a: ['1', '2'], b: ['x']}, as Go's url.ParseQuery. */
export function queryDecode(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [k, v] of new URLSearchParams(text)) (out[k] ??= []).push(v)
  return out
}

/** A map of string → string or list of strings to `a=1&b=x`, keys sorted as Go's url.Values.Encode. */
export function queryEncode(value: unknown): string {
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value as Record<string, unknown>)
  const params = new URLSearchParams()
  for (const [k, v] of entries.sort(([a], [b]) => (String(a) < String(b) ? -1 : 1))) {
    for (const item of Array.isArray(v) ? v : [v]) params.append(String(k), typeof item === 'bigint' ? item.toString() : String(item))
  }
  return params.toString()
}

export function isQueryString(text: string): boolean {
  // key=value pairs joined by &, no spaces: 'not a query string' is not one, in ngrok's examples.
  return /^[^=&\s]+=[^&\s]*(&[^=&\s]+=[^&\s]*)*$/.test(text.replace(/^\?/, ''))
}

/** Go's strconv.Quote for printable text: double quotes, with backslash escapes. */
export function quote(text: string): string {
  return JSON.stringify(text)
}

export function basicAuthEncode(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`
}

export function base64Decode(text: string): Uint8Array {
  const url = /[-_]/.test(text)
  // Standard base64 is padded, as Go's StdEncoding wants: 'aGVsbG8' is an error in ngrok's examples.
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text) || (!url && text.length % 4 !== 0)) throw new Error('base64.decode: not base64')
  return new Uint8Array(Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64'))
}

/** ngrok's `string.format(list)`: %s %d %f %e %b %x %X %o (and %%), one list item per clause. */
export function formatString(pattern: string, args: readonly unknown[]): string {
  let i = 0
  return pattern.replace(/%([%sdfebxXo])/g, (_m, verb: string) => {
    if (verb === '%') return '%'
    if (i >= args.length) throw new Error(`format: ${pattern} needs more than ${args.length} value${args.length === 1 ? '' : 's'}`)
    const v = args[i++]
    const num = (): number => {
      if (typeof v === 'bigint') return Number(v)
      if (typeof v === 'number') return v
      throw new Error(`format: %${verb} needs a number, got ${typeof v}`)
    }
    const int = (): bigint => {
      if (typeof v === 'bigint') return v
      if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v)
      throw new Error(`format: %${verb} needs an integer`)
    }
    switch (verb) {
      case 's': return typeof v === 'string' ? v : jsonEncode(v)
      case 'd': return int().toString()
      case 'f': return num().toFixed(6)
      case 'e': return num().toExponential(6).replace(/e([+-])(\d)$/, 'e$10$2')
      case 'b': return typeof v === 'boolean' ? (v ? '1' : '0') : int().toString(2)
      case 'x': return typeof v === 'string' ? Buffer.from(v).toString('hex') : int().toString(16)
      case 'X': return typeof v === 'string' ? Buffer.from(v).toString('hex').toUpperCase() : int().toString(16).toUpperCase()
      default: return int().toString(8)
    }
  })
}
