/**
 * Certificates from an ACME CA, issued on demand and served through SNI.
 *
 * The first TLS handshake for a host the relay may serve (`<name>.<domain>` whose name
 * an agent holds, the relay's own domain, or a verified custom domain) starts an order;
 * that handshake waits for it up to `handshakeWait`, then gets the relay's default
 * certificate. A host no agent holds gets the default certificate and no order, so a
 * scanner sending random SNI names cannot spend the account's quota; orders are also
 * capped per hour and a host whose order failed is not retried for `failureBackoff`.
 *
 * With a DNS hook, names under the domain share one wildcard certificate
 * (`*.<domain>` and `<domain>`, through DNS-01), ordered at start.
 *
 * Certificates are kept in the state directory (store.ts), loaded at start, and renewed
 * when a third of their lifetime is left (checked every `renewCheckInterval`); a new
 * certificate replaces the old one for new handshakes at once.
 */
import { createSecureContext, type SecureContext } from 'node:tls'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { RelayError, type RelayErrorCode } from '../errors.js'
import type { LogFn } from '../options.js'
import { AcmeIssuer, LETS_ENCRYPT_DIRECTORY, type ChallengeKind } from './issuer.js'
import { AcmeStore, type StoredCert } from './store.js'
import type { AcmeOptions } from './acme-options.js'
import type { AcmeEvent } from '../observe.js'

export type { AcmeOptions }

export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/'

export type SniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void

interface Entry {
  stored: StoredCert
  context: SecureContext
}

/** What to order for a host: the certificate's key in the store, its names, its challenges. */
interface Target {
  key: string
  hosts: string[]
  kinds: ChallengeKind[]
}

export interface CertManagerOptions {
  acme: AcmeOptions
  stateDir: string
  domain: string
  /** May a certificate be ordered for this host? (held names, the relay's domain, custom domains.) */
  allowed: (host: string) => boolean
  /** Names under the domain are covered by the operator's own certificate (--tls-cert): order only other hosts. */
  domainCovered: boolean
  httpListener: boolean
  log: LogFn
  /** Each order's outcome, for the relay's metrics (`gw_relay_acme_events_total`). */
  onEvent?: (event: AcmeEvent) => void
  now?: () => number
}

const HOUR = 3600_000
const HOST = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/

export class CertManager {
  private readonly byKey = new Map<string, Entry>()
  private readonly byName = new Map<string, Entry>()
  private readonly inflight = new Map<string, Promise<Entry | undefined>>()
  private readonly failedUntil = new Map<string, number>()
  private readonly orderTimes: number[] = []
  private readonly timer: NodeJS.Timeout
  private readonly now: () => number
  private readonly kinds: ChallengeKind[]
  private closed = false

  private constructor(
    private readonly opts: CertManagerOptions,
    private readonly store: AcmeStore,
    private readonly issuer: AcmeIssuer,
  ) {
    this.now = opts.now ?? Date.now
    const wanted = opts.acme.challenges ?? ['http-01', 'tls-alpn-01']
    this.kinds = wanted.filter((k) => k !== 'http-01' || opts.httpListener)
    if (this.kinds.length === 0) {
      throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', 'ACME needs a challenge it can answer: http-01 needs the HTTP listener (--http-port), or allow tls-alpn-01')
    }
    for (const stored of store.loadAll((file, err) => opts.log('warn', 'acme certificate unreadable; it will be ordered again', { file, error: err.message }))) {
      this.install(stored)
    }
    this.timer = setInterval(() => this.renewDue(), opts.acme.renewCheckInterval ?? 12 * HOUR)
    this.timer.unref()
  }

  static async start(opts: CertManagerOptions): Promise<CertManager> {
    const store = new AcmeStore(opts.stateDir)
    let accountKey = store.accountKey()
    if (!accountKey) {
      accountKey = await AcmeIssuer.createAccountKey()
      store.saveAccountKey(accountKey)
    }
    const issuer = await AcmeIssuer.create(
      {
        directoryUrl: opts.acme.directoryUrl ?? LETS_ENCRYPT_DIRECTORY,
        email: opts.acme.email,
        ...(opts.acme.directoryCa ? { directoryCa: opts.acme.directoryCa } : {}),
        ...(opts.acme.dnsHook ? { dnsHook: opts.acme.dnsHook } : {}),
        log: opts.log,
      },
      accountKey,
    )
    const manager = new CertManager(opts, store, issuer)
    manager.renewDue()
    return manager
  }

  /** The SNI callback: an ACME certificate for `servername`, or `next`'s answer (the default certificate when there is none). */
  sni(next?: SniCallback): SniCallback {
    return (servername, cb) => {
      const fallback = (): void => (next ? next(servername, cb) : cb(null, undefined))
      const host = normalizeHost(servername)
      if (!host || this.closed) return fallback()
      const entry = this.lookup(host)
      if (entry && entry.stored.notAfter > this.now()) return cb(null, entry.context)
      const target = this.targetFor(host)
      if (!target) return fallback()
      if (!this.opts.allowed(host)) {
        this.opts.log('debug', 'acme: no certificate for a host no agent holds', { host, code: 'GW_ERR_ACME_NOT_HELD' satisfies RelayErrorCode })
        return fallback()
      }
      const pending = this.ensure(target)
      if (!pending) return fallback()
      let answered = false
      const timer = setTimeout(() => {
        answered = true
        fallback()
      }, this.opts.acme.handshakeWait ?? 10_000)
      void pending.then((issued) => {
        if (answered) return
        clearTimeout(timer)
        if (issued) cb(null, issued.context)
        else fallback()
      })
    }
  }

  /** Answers `GET /.well-known/acme-challenge/<token>` for an order in flight; false for any other request. */
  answerHttp01(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? ''
    if (!url.startsWith(ACME_CHALLENGE_PATH)) return false
    const keyAuthorization = this.issuer.http01.get(url.slice(ACME_CHALLENGE_PATH.length))
    if (keyAuthorization === undefined) return false
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(keyAuthorization), 'cache-control': 'no-store' })
    res.end(keyAuthorization)
    return true
  }

  /** The TLS-ALPN-01 certificate for `host`, while its challenge is pending. */
  alpnChallenge(host: string): SecureContext | undefined {
    return this.issuer.alpn.get(host.toLowerCase())
  }

  /** Orders a certificate for `host` now if it may have one and has none; resolves when it is served (or the order failed). */
  async prepare(host: string): Promise<boolean> {
    const h = normalizeHost(host)
    if (!h) return false
    const existing = this.lookup(h)
    if (existing && !this.renewalDue(existing.stored)) return true
    const target = this.targetFor(h)
    if (!target || !this.opts.allowed(h)) return false
    const pending = this.ensure(target)
    return pending ? (await pending) !== undefined : false
  }

  close(): void {
    this.closed = true
    clearInterval(this.timer)
    this.issuer.close()
  }

  private lookup(host: string): Entry | undefined {
    const dot = host.indexOf('.')
    return this.byName.get(host) ?? (dot > 0 ? this.byName.get(`*${host.slice(dot)}`) : undefined)
  }

  private targetFor(host: string): Target | undefined {
    const { domain } = this.opts
    const inDomain = host === domain || (host.endsWith(`.${domain}`) && !host.slice(0, -domain.length - 1).includes('.'))
    if (inDomain && this.opts.domainCovered) return undefined
    if (inDomain && this.opts.acme.dnsHook) return { key: `*.${domain}`, hosts: [`*.${domain}`, domain], kinds: ['dns-01'] }
    return { key: host, hosts: [host], kinds: this.kinds }
  }

  /** The order for `target` in flight, a new one, or undefined when limits refuse one now. */
  private ensure(target: Target, event: 'order' | 'renewal' = 'order'): Promise<Entry | undefined> | undefined {
    const running = this.inflight.get(target.key)
    if (running) return running
    const now = this.now()
    if ((this.failedUntil.get(target.key) ?? 0) > now) return undefined
    while (this.orderTimes.length > 0 && this.orderTimes[0]! <= now - HOUR) this.orderTimes.shift()
    const perHour = this.opts.acme.ordersPerHour ?? 20
    const concurrent = this.opts.acme.maxConcurrentOrders ?? 4
    if (this.orderTimes.length >= perHour || this.inflight.size >= concurrent) {
      const code: RelayErrorCode = 'GW_ERR_ACME_RATE_LIMITED'
      this.opts.log('warn', 'acme: order refused by the rate limit', {
        host: target.key,
        code,
        error: new RelayError(code, this.orderTimes.length >= perHour ? `${perHour} orders in the last hour` : `${concurrent} orders in flight`).message,
      })
      this.opts.onEvent?.({ event: 'rate_limited', result: 'error', detail: code })
      return undefined
    }
    this.orderTimes.push(now)
    const started = this.now()
    const order = this.order(target).then(
      ({ stored, kind }) => {
        const entry = this.install(stored)
        this.failedUntil.delete(target.key)
        this.opts.log('info', 'acme: certificate issued', { host: target.key, challenge: kind, names: stored.names, not_after: new Date(stored.notAfter).toISOString(), ms: this.now() - started })
        this.opts.onEvent?.({ event, result: 'ok', detail: kind })
        return entry
      },
      (err: Error) => {
        this.failedUntil.set(target.key, this.now() + (this.opts.acme.failureBackoff ?? 10 * 60_000))
        const code = err instanceof RelayError ? err.code : 'GW_ERR_ACME_ISSUE'
        this.opts.log('warn', 'acme: order failed', { host: target.key, code, error: err.message })
        this.opts.onEvent?.({ event, result: 'error', detail: code })
        return undefined
      },
    )
    const tracked = order.finally(() => this.inflight.delete(target.key))
    this.inflight.set(target.key, tracked)
    return tracked
  }

  /** Tries each challenge kind in turn; the first certificate wins. */
  private async order(target: Target): Promise<{ stored: StoredCert; kind: ChallengeKind }> {
    let last: Error | undefined
    for (const kind of target.kinds) {
      try {
        const { cert, key } = await this.issuer.order(target.hosts, kind)
        if (this.closed) throw new RelayError('GW_ERR_ACME_ISSUE', 'the relay closed while the order was in flight')
        return { stored: this.store.save(target.key, cert, key), kind }
      } catch (err) {
        last = err as Error
        if (this.closed) break
      }
    }
    throw last ?? new RelayError('GW_ERR_ACME_ISSUE', `no challenge to try for ${target.key}`)
  }

  private install(stored: StoredCert): Entry {
    const entry: Entry = { stored, context: createSecureContext({ cert: stored.cert, key: stored.key }) }
    const previous = this.byKey.get(stored.host)
    if (previous) for (const name of previous.stored.names) if (this.byName.get(name) === previous) this.byName.delete(name)
    this.byKey.set(stored.host, entry)
    for (const name of stored.names) this.byName.set(name, entry)
    return entry
  }

  private uninstall(entry: Entry): void {
    this.byKey.delete(entry.stored.host)
    for (const name of entry.stored.names) if (this.byName.get(name) === entry) this.byName.delete(name)
    this.store.remove(entry.stored.host)
  }

  private renewalDue(stored: StoredCert): boolean {
    return this.now() >= stored.notAfter - (stored.notAfter - stored.notBefore) / 3
  }

  /** Renews what is due; a certificate for a host nobody holds any more is not renewed, and is dropped once expired. */
  private renewDue(): void {
    if (this.closed) return
    if (this.opts.acme.dnsHook && !this.opts.domainCovered) {
      const key = `*.${this.opts.domain}`
      const wildcard = this.byKey.get(key)
      if (!wildcard || this.renewalDue(wildcard.stored)) this.ensure(this.targetFor(this.opts.domain)!, wildcard ? 'renewal' : 'order')
    }
    for (const entry of [...this.byKey.values()]) {
      const { host } = entry.stored
      if (host.startsWith('*.') || !this.renewalDue(entry.stored)) continue
      const target = this.targetFor(host)
      if (target && this.opts.allowed(host)) {
        this.ensure(target, 'renewal')
      } else if (entry.stored.notAfter <= this.now()) {
        this.uninstall(entry)
        this.opts.log('info', 'acme: expired certificate dropped; no agent holds its host', { host })
      }
    }
  }
}

/** A server name as a certificate could be ordered for it, or undefined (IP literals, junk). */
export function normalizeHost(servername: string | undefined): string | undefined {
  if (!servername) return undefined
  const host = servername.toLowerCase().replace(/\.$/, '')
  return HOST.test(host) ? host : undefined
}
