/**
 * CIDR matching for `restrict-ips` and the `inCidrRange` macro, on Node's `net.BlockList`
 * (IPv4 and IPv6 in C++, no per-check allocation). An IPv4-mapped IPv6 client address
 * (`::ffff:10.0.0.1`, what a dual-stack socket reports) is matched as the IPv4 address,
 * so `10.0.0.0/8` means what the user expects.
 */
import { BlockList, isIP } from 'node:net'

export interface CidrSet {
  has(ip: string): boolean
  /** The first CIDR, as written, that holds the address; undefined when none does. */
  match(ip: string): string | undefined
}

/** Normalise a client address: strip a zone id and an IPv4-mapped prefix. */
export function normalizeIp(ip: string): string {
  if (ip.startsWith('::ffff:') && ip.includes('.')) return ip.slice(7)
  const zone = ip.indexOf('%')
  return zone === -1 ? ip : ip.slice(0, zone)
}

/** Parse one CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address; undefined when invalid. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = text.indexOf('/')
  const address = normalizeIp(slash === -1 ? text : text.slice(0, slash))
  const version = isIP(address)
  if (version === 0) return undefined
  const max = version === 4 ? 32 : 128
  let prefix = max
  if (slash !== -1) {
    const p = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p)) return undefined
    prefix = Number(p)
    if (prefix > max) return undefined
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' }
}

/** Throws a plain Error naming the first invalid entry; callers turn it into a policy error. */
export function createCidrSet(cidrs: readonly string[]): CidrSet {
  const list = new BlockList()
  const parsed: Array<{ text: string; address: string; prefix: number; family: 'ipv4' | 'ipv6' }> = []
  for (const text of cidrs) {
    const c = parseCidr(text)
    if (!c) throw new Error(`not a valid CIDR or IP address: ${JSON.stringify(text)}`)
    list.addSubnet(c.address, c.prefix, c.family)
    parsed.push({ text, ...c })
  }
  // One list per CIDR, made on the first match(): only restrict-ips' matched_cidr asks.
  let each: Array<{ text: string; list: BlockList }> | undefined
  // BlockList.check parses the address on every call (a few µs); clients repeat, so
  // answers are memoised per address, in a bounded map.
  const seen = new Map<string, boolean>()
  return {
    has(ip) {
      let hit = seen.get(ip)
      if (hit !== undefined) return hit
      const addr = normalizeIp(ip)
      const v = isIP(addr)
      hit = v !== 0 && list.check(addr, v === 4 ? 'ipv4' : 'ipv6')
      if (seen.size >= 10_000) seen.clear()
      seen.set(ip, hit)
      return hit
    },
    match(ip) {
      if (!this.has(ip)) return undefined
      each ??= parsed.map((c) => {
        const one = new BlockList()
        one.addSubnet(c.address, c.prefix, c.family)
        return { text: c.text, list: one }
      })
      const addr = normalizeIp(ip)
      const family = isIP(addr) === 4 ? 'ipv4' : 'ipv6'
      return each.find((e) => e.list.check(addr, family))?.text
    },
  }
}

const cache = new Map<string, CidrSet | null>()

/** For the CEL macro: CIDR strings are nearly always literals, so sets are cached by text. */
export function cachedCidrSet(cidr: string): CidrSet | null {
  let set = cache.get(cidr)
  if (set === undefined) {
    try {
      set = createCidrSet([cidr])
    } catch {
      set = null
    }
    if (cache.size > 1000) cache.clear()
    cache.set(cidr, set)
  }
  return set
}

const PRIVATE = createCidrSet([
  '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '169.254.0.0/16', '100.64.0.0/10',
  '::1/128', 'fc00::/7', 'fe80::/10',
])

export function isPrivateIp(ip: string): boolean {
  return PRIVATE.has(ip)
}
