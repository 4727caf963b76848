/**
 * Custom domains (`gw relay --custom-domains`): an agent asks for a host outside the
 * relay's domain (`gw http 3000 --url app.customer.com`), and the relay serves it once
 * DNS shows that whoever controls the host pointed it here:
 *
 * - a CNAME from the host to the relay's domain or to any `<x>.<domain>` (followed through
 *   up to MAX_CNAME_HOPS other CNAMEs, as a resolver would), or
 * - a TXT record `_gw-challenge.<host>` holding `challengeValue(owner, host)`: a value
 *   derived from the requesting authtoken, so it proves the host to that token alone.
 *   An apex domain (`customer.com`) cannot have a CNAME; it uses the TXT record, with A
 *   and AAAA records at the relay.
 *
 * Lookups go to the system resolver, or to `--dns-server host:port`. Answers are kept
 * for CACHE_TTL_MS (a record that was not there for NEGATIVE_TTL_MS, so a user who just
 * created it is not refused for long); concurrent hellos for one host share one lookup.
 *
 * A verified host is then a name like any other: owned by its token in names.json (the
 * same first-owner and expiry rules), routed by Host, and allowed an ACME certificate.
 */
import { createHash } from 'node:crypto'
import { Resolver } from 'node:dns/promises'
import { isIP } from 'node:net'
import { HandshakeError } from '@gw/protocol'
import { RelayError } from './errors.js'
import { hashToken } from './authtokens.js'

/** The TXT record's name is this label before the host. */
export const CHALLENGE_LABEL = '_gw-challenge'
export const CACHE_TTL_MS = 60_000
export const NEGATIVE_TTL_MS = 5_000
const CACHE_ENTRIES = 10_000
const MAX_CNAME_HOPS = 8
const DNS_TIMEOUT_MS = 2_000

const HOST = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/** The TXT record that proves `host` to the owner: `_gw-challenge.<host>`. */
export function challengeRecord(host: string): string {
  return `${CHALLENGE_LABEL}.${host}`
}

/**
 * The TXT value that proves `host` to `owner` (`token:<sha256 of the authtoken>`, or an
 * anonymous relay's `agent:<…>`). Published in DNS, it gives nothing away: it is a hash
 * of the token's hash, bound to the host.
 */
export function challengeValue(owner: string, host: string): string {
  return `gw-${createHash('sha256').update(`gw custom domain\0${owner}\0${host}`).digest('hex').slice(0, 40)}`
}

/** The TXT value that proves `host` to the holder of `authtoken` on a relay with tokens. */
export function tokenChallengeValue(authtoken: string, host: string): string {
  return challengeValue(`token:${hashToken(authtoken).toString('hex')}`, host.toLowerCase().replace(/\.$/, ''))
}

/**
 * `host:port` (or `[v6]:port`, or an address alone for port 53) for `--dns-server`;
 * throws GW_ERR_RELAY_OPTION_INVALID with the value otherwise.
 */
export function parseDnsServer(value: string, flag = '--dns-server'): string {
  const text = value.trim()
  let address = text
  let port = 53
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? (isIP(text) === 6 ? null : /^([^:]+)(?::(\d{1,5}))?$/.exec(text))
  if (m) {
    address = m[1]!
    if (m[2] !== undefined) port = Number(m[2])
  }
  if (isIP(address) === 0 || port < 1 || port > 65535) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `${flag} ${JSON.stringify(value)} is not a DNS server address; give an IP address with an optional port, e.g. 127.0.0.1:53 or [::1]:5353`)
  }
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`
}

/**
 * A host an agent may ask for as a custom domain, normalised; throws GW_ERR_NAME_INVALID
 * with the reason. The relay's own domain and the names under it are not custom.
 */
export function checkCustomHost(requested: string, domain: string): string {
  const host = requested.trim().toLowerCase().replace(/\.$/, '')
  if (isIP(host) !== 0 || !HOST.test(host)) {
    throw new HandshakeError('GW_ERR_NAME_INVALID', `"${requested}" is not a host name a custom domain can have: give a DNS name such as app.example.com (labels of letters, digits and hyphens), not an address`)
  }
  if (host === domain || host.endsWith(`.${domain}`)) {
    throw new HandshakeError('GW_ERR_DOMAIN_NOT_SERVED', `${host} is under the relay's own domain ${domain}, where names are one label: ask for <name>.${domain}`)
  }
  return host
}

type Answer = { records: string[] } | { missing: true } | { failed: string }

interface Cached {
  answer: Answer
  until: number
}

export interface CustomDomainsOptions {
  /** The relay's domain: a CNAME to it, or to a name under it, verifies a host. */
  domain: string
  /** `host:port` of the DNS server to ask (parseDnsServer); the system's resolvers when omitted. */
  dnsServer?: string
  now?: () => number
}

/** How a host was shown to point at the relay. */
export type Verification = { by: 'cname'; target: string } | { by: 'txt' }

export class CustomDomains {
  private readonly resolver: Resolver
  private readonly cache = new Map<string, Cached>()
  private readonly inflight = new Map<string, Promise<Answer>>()
  private readonly now: () => number
  readonly domain: string

  constructor(readonly options: CustomDomainsOptions) {
    this.domain = options.domain
    this.now = options.now ?? Date.now
    this.resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 })
    if (options.dnsServer) this.resolver.setServers([options.dnsServer])
  }

  /**
   * Checks that `host` points at this relay for `owner`. Throws
   * GW_ERR_CUSTOM_DOMAIN_UNVERIFIED naming what was found and what record to create, or
   * GW_ERR_CUSTOM_DOMAIN_DNS when the lookups failed (the agent tries again later).
   */
  async verify(host: string, owner: string): Promise<Verification> {
    const expected = challengeValue(owner, host)
    const [chain, txt] = await Promise.all([this.cnameChain(host), this.lookup('txt', challengeRecord(host))])
    const target = chain.targets.find((t) => this.underDomain(t))
    if (target) return { by: 'cname', target }
    if ('records' in txt && txt.records.includes(expected)) return { by: 'txt' }
    const failed = [chain.failed, 'failed' in txt ? `TXT ${challengeRecord(host)}: ${txt.failed}` : undefined].filter(Boolean)
    if (failed.length > 0) {
      throw new HandshakeError('GW_ERR_CUSTOM_DOMAIN_DNS', `cannot check that ${host} points at this relay: the DNS lookup failed (${failed.join('; ')}); the agent tries again`)
    }
    const found = [
      chain.targets.length > 0 ? `its CNAME is ${chain.targets.join(' -> ')}` : 'it has no CNAME',
      'records' in txt ? `${challengeRecord(host)} holds ${txt.records.map((r) => JSON.stringify(r)).join(', ')}, not this authtoken's value` : `there is no TXT record ${challengeRecord(host)}`,
    ].join(', and ')
    throw new HandshakeError(
      'GW_ERR_CUSTOM_DOMAIN_UNVERIFIED',
      `${host} does not point at this relay: ${found}. Create "${host} CNAME ${this.domain}" ` +
        `(or a CNAME to any name under ${this.domain}), or, for an apex domain, the TXT record "${challengeRecord(host)} TXT ${expected}" ` +
        '(this value is for your authtoken only); then start the tunnel again',
    )
  }

  private underDomain(target: string): boolean {
    const t = target.toLowerCase().replace(/\.$/, '')
    return t === this.domain || t.endsWith(`.${this.domain}`)
  }

  /** The CNAME targets from `host` on, until one is under the domain, there is none, or MAX_CNAME_HOPS. */
  private async cnameChain(host: string): Promise<{ targets: string[]; failed?: string }> {
    const targets: string[] = []
    let name = host
    for (let hop = 0; hop < MAX_CNAME_HOPS; hop++) {
      const answer = await this.lookup('cname', name)
      if ('failed' in answer) return { targets, failed: `CNAME ${name}: ${answer.failed}` }
      if ('missing' in answer || answer.records.length === 0) return { targets }
      const next = answer.records[0]!.toLowerCase().replace(/\.$/, '')
      if (targets.includes(next)) return { targets }
      targets.push(next)
      if (this.underDomain(next)) return { targets }
      name = next
    }
    return { targets }
  }

  private lookup(kind: 'cname' | 'txt', name: string): Promise<Answer> {
    const key = `${kind} ${name}`
    const cached = this.cache.get(key)
    if (cached && cached.until > this.now()) return Promise.resolve(cached.answer)
    const running = this.inflight.get(key)
    if (running) return running
    const query = (kind === 'cname' ? this.resolver.resolveCname(name) : this.resolver.resolveTxt(name).then((rows) => rows.map((parts) => parts.join(''))))
      .then((records): Answer => ({ records }), (err: NodeJS.ErrnoException): Answer =>
        // No such name, or no record of that type: an answer. Anything else (a timeout,
        // SERVFAIL, a refused connection) says nothing about the host.
        err.code === 'ENOTFOUND' || err.code === 'ENODATA' ? { missing: true } : { failed: err.code ?? err.message })
      .then((answer) => {
        const ttl = 'records' in answer ? CACHE_TTL_MS : 'missing' in answer ? NEGATIVE_TTL_MS : 0
        if (ttl > 0) {
          if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!)
          this.cache.set(key, { answer, until: this.now() + ttl })
        }
        return answer
      })
      .finally(() => this.inflight.delete(key))
    this.inflight.set(key, query)
    return query
  }

  close(): void {
    this.resolver.cancel()
  }
}
