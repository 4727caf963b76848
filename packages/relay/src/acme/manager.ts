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
 *
 * In a cluster (`shared`, shared-acme.ts) challenges, certificates, the order lock, the
 * failure backoff and the hourly budget are the cluster's: any relay answers a
 * validation, one relay orders (or renews) a certificate and every relay serves it.
 */
import { createSecureContext, type SecureContext } from 'node:tls'
import { pairContext } from '../context-pairs.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { RelayError, type RelayErrorCode } from '../errors.js'
import type { LogFn } from '../options.js'
import { AcmeIssuer, LETS_ENCRYPT_DIRECTORY, type ChallengeKind } from './issuer.js'
import { AcmeStore, describe as describeCert, type StoredCert } from './store.js'
import type { AcmeOptions } from './acme-options.js'
import type { AcmeEvent } from '../observe.js'
import { parseSharedCert, type SharedAcme } from './shared-acme.js'

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
  /** May a certificate be ordered for this host? (held names, the relay's domain, custom domains; a cluster may have to ask.) */
  allowed: (host: string) => boolean | Promise<boolean>
  /** Names under the domain are covered by the operator's own certificate (--tls-cert): order only other hosts. */
  domainCovered: boolean
  httpListener: boolean
  log: LogFn
  /** Each order's outcome, for the relay's metrics (`gw_relay_acme_events_total`). */
  onEvent?: (event: AcmeEvent) => void
  /** The cluster's shared ACME state (`--redis`, `--workers`): see shared-acme.ts. */
  shared?: SharedAcme
  now?: () => number
}

/** A relay of a cluster holds a certificate's order lock this long at most (a relay that dies mid-order frees it then). */
export const ORDER_LOCK_TTL_MS = 5 * 60_000
/** A relay waiting for another's order looks for the certificate this often (besides being told). */
const SHARED_POLL_MS = 1_000

const HOUR = 3600_000
const HOST = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/

export class CertManager {
  private readonly byKey = new Map<string, Entry>()
  private readonly byName = new Map<string, Entry>()
  private readonly inflight = new Map<string, Promise<Entry | undefined>>()
  private readonly failedUntil = new Map<string, number>()
  private readonly orderTimes: number[] = []
  /** Orders this relay itself runs now (a cluster's `inflight` also holds waits for another relay's). */
  private ordering = 0
  /** Waiting for another relay's certificate: order key → wake-ups. */
  private readonly waiters = new Map<string, Set<() => void>>()
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
    const own = accountKey ?? await AcmeIssuer.createAccountKey()
    // A cluster has one account: the first relay's key.
    if (opts.shared) {
      try {
        accountKey = await opts.shared.accountKey(own)
      } catch (err) {
        throw new RelayError('GW_ERR_ACME_ISSUE', `the cluster's ACME account key could not be read from ${opts.shared.describe}: ${(err as Error).message}`, { cause: err })
      }
    }
    accountKey ??= own
    if (accountKey !== store.accountKey()) store.saveAccountKey(accountKey)
    const issuer = await AcmeIssuer.create(
      {
        directoryUrl: opts.acme.directoryUrl ?? LETS_ENCRYPT_DIRECTORY,
        email: opts.acme.email,
        ...(opts.acme.directoryCa ? { directoryCa: opts.acme.directoryCa } : {}),
        ...(opts.acme.dnsHook ? { dnsHook: opts.acme.dnsHook } : {}),
        ...(opts.shared ? { shared: opts.shared } : {}),
        log: opts.log,
      },
      accountKey,
    )
    const manager = new CertManager(opts, store, issuer)
    if (opts.shared) await manager.joinCluster(opts.shared)
    manager.renewDue()
    return manager
  }

  /**
   * A relay of a cluster: it takes every certificate the cluster has (newer than its own),
   * gives the cluster those it has alone, and hears of each one another relay stores.
   */
  private async joinCluster(shared: SharedAcme): Promise<void> {
    try {
      await shared.onCert((key) => void this.fromShared(key))
      const theirs = new Map(await shared.certs())
      for (const [key, raw] of theirs) await this.fromShared(key, raw)
      for (const entry of this.byKey.values()) {
        const other = parseSharedCert(theirs.get(entry.stored.host) ?? null)
        if (other && describeCert(entry.stored.host, other.cert, other.key).notAfter >= entry.stored.notAfter) continue
        await shared.putCert(entry.stored.host, JSON.stringify({ cert: entry.stored.cert, key: entry.stored.key }))
      }
    } catch (err) {
      this.opts.log('warn', 'acme: the cluster\'s certificates could not be read; this relay orders what it lacks', { error: (err as Error).message })
    }
  }

  /**
   * The certificate the cluster has for `key` (read now, or `raw` as read), installed here
   * (and kept in this relay's state directory) when it is newer than this relay's: the
   * entry now served, or undefined.
   */
  private async fromShared(key: string, raw?: string | null): Promise<Entry | undefined> {
    const current = this.byKey.get(key)
    try {
      const got = parseSharedCert(raw !== undefined ? raw : await this.opts.shared!.cert(key))
      if (!got || this.closed) return current
      const stored = describeCert(key, got.cert, got.key)
      if (current && current.stored.notAfter >= stored.notAfter) return current
      const entry = this.install(this.store.save(key, got.cert, got.key))
      this.opts.log('info', 'acme: certificate taken from the cluster', { host: key, names: stored.names, not_after: new Date(stored.notAfter).toISOString() })
      for (const wake of this.waiters.get(key) ?? []) wake()
      return entry
    } catch (err) {
      this.opts.log('warn', 'acme: a certificate of the cluster could not be read', { host: key, error: (err as Error).message })
      return current
    }
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
      const allowed = this.opts.allowed(host)
      if (allowed === true) return this.serveOrdered(host, target, cb, fallback)
      if (allowed === false) return this.notHeld(host, fallback)
      allowed.then(
        (yes) => (yes ? this.serveOrdered(host, target, cb, fallback) : this.notHeld(host, fallback)),
        () => fallback(),
      )
    }
  }

  private notHeld(host: string, fallback: () => void): void {
    this.opts.log('debug', 'acme: no certificate for a host no agent holds', { host, code: 'GW_ERR_ACME_NOT_HELD' satisfies RelayErrorCode })
    fallback()
  }

  /** A handshake for a host that may have a certificate: the one being ordered (or taken from the cluster), within the wait. */
  private serveOrdered(host: string, target: Target, cb: (err: Error | null, ctx?: SecureContext) => void, fallback: () => void): void {
    const entry = this.lookup(host)
    if (entry && entry.stored.notAfter > this.now()) return cb(null, entry.context)
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
      if (issued && issued.stored.notAfter > this.now()) cb(null, issued.context)
      else fallback()
    })
  }

  /**
   * Answers `GET /.well-known/acme-challenge/<token>` for an order in flight: true when
   * answered, false for any other request; in a cluster, a token this relay did not
   * order is looked up in the shared state (a promise: answered or not).
   */
  answerHttp01(req: IncomingMessage, res: ServerResponse): boolean | Promise<boolean> {
    const url = req.url ?? ''
    if (!url.startsWith(ACME_CHALLENGE_PATH)) return false
    const token = url.slice(ACME_CHALLENGE_PATH.length)
    const keyAuthorization = this.issuer.http01.get(token)
    if (keyAuthorization !== undefined) return reply(res, keyAuthorization)
    const shared = this.opts.shared
    if (!shared || !TOKEN.test(token)) return false
    return shared.getChallenge(`http-01:${token}`).then(
      (value) => (value !== null && !res.destroyed ? reply(res, value) : false),
      () => false,
    )
  }

  /** The TLS-ALPN-01 certificate for `host`, while its challenge is pending (in a cluster, whichever relay ordered it). */
  alpnChallenge(host: string): SecureContext | undefined | Promise<SecureContext | undefined> {
    const h = host.toLowerCase()
    const local = this.issuer.alpn.get(h)
    if (local || !this.opts.shared || !normalizeHost(h)) return local
    return this.opts.shared.getChallenge(`tls-alpn-01:${h}`).then((raw) => {
      const got = parseSharedCert(raw)
      return got ? createSecureContext({ cert: got.cert, key: got.key }) : undefined
    }, () => undefined)
  }

  /** Orders a certificate for `host` now if it may have one and has none; resolves when it is served (or the order failed). */
  async prepare(host: string): Promise<boolean> {
    const h = normalizeHost(host)
    if (!h) return false
    const existing = this.lookup(h)
    if (existing && !this.renewalDue(existing.stored)) return true
    const target = this.targetFor(h)
    if (!target || !(await this.opts.allowed(h))) return false
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
    if (this.opts.shared) {
      const tracked = this.orderShared(this.opts.shared, target, event).finally(() => this.inflight.delete(target.key))
      this.inflight.set(target.key, tracked)
      return tracked
    }
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

  /**
   * A cluster's order: the certificate another relay stored, if it is not due; else the
   * order lock (or a wait for the relay that holds it), within the cluster's budget and
   * backoff. The certificate issued is stored for every relay.
   */
  private async orderShared(shared: SharedAcme, target: Target, event: 'order' | 'renewal'): Promise<Entry | undefined> {
    const have = await this.fromShared(target.key)
    if (have && !this.renewalDue(have.stored)) return have
    const perHour = this.opts.acme.ordersPerHour ?? 20
    const concurrent = this.opts.acme.maxConcurrentOrders ?? 4
    if (this.ordering >= concurrent) return this.rateLimited(target, `${concurrent} orders in flight on this relay`, have)
    let begun
    try {
      begun = await shared.begin(target.key, ORDER_LOCK_TTL_MS, perHour)
    } catch (err) {
      this.opts.log('warn', 'acme: no order now: the cluster\'s order lock could not be asked for', { host: target.key, error: (err as Error).message })
      return have
    }
    if (begun === 'RATE') return this.rateLimited(target, `${perHour} orders in the last hour in the cluster (${shared.describe})`, have)
    if (begun === 'BACKOFF') return have
    if (begun === 'LOCKED') return this.awaitShared(shared, target.key, have)
    const backoff = this.opts.acme.failureBackoff ?? 10 * 60_000
    this.ordering++
    const started = this.now()
    try {
      // Another relay may have stored it between the first look and the lock.
      const again = await this.fromShared(target.key)
      if (again && !this.renewalDue(again.stored)) {
        await shared.end(target.key, 0).catch(() => {})
        return again
      }
      let ordered: { stored: StoredCert; kind: ChallengeKind }
      try {
        ordered = await this.order(target)
      } catch (err) {
        this.failed(target, event, err as Error, backoff)
        await shared.end(target.key, backoff).catch(() => {})
        return have
      }
      const { stored, kind } = ordered
      const entry = this.install(stored)
      this.failedUntil.delete(target.key)
      this.opts.log('info', 'acme: certificate issued', { host: target.key, challenge: kind, names: stored.names, not_after: new Date(stored.notAfter).toISOString(), ms: this.now() - started })
      this.opts.onEvent?.({ event, result: 'ok', detail: kind })
      await shared.putCert(target.key, JSON.stringify({ cert: stored.cert, key: stored.key })).catch((err: Error) => {
        this.opts.log('warn', 'acme: the certificate could not be stored for the cluster; the other relays order their own', { host: target.key, error: err.message })
      })
      await shared.end(target.key, 0).catch(() => {})
      return entry
    } finally {
      this.ordering--
    }
  }

  /**
   * Another relay of the cluster orders `key`: its certificate once stored (told, or looked
   * for), or `have` when its order ended without one (it failed: its backoff holds) or its
   * lock ran out (it died mid-order).
   */
  private async awaitShared(shared: SharedAcme, key: string, have: Entry | undefined): Promise<Entry | undefined> {
    const deadline = this.now() + ORDER_LOCK_TTL_MS
    const newer = (): boolean => {
      const current = this.byKey.get(key)
      return current !== undefined && current !== have
    }
    while (!this.closed && this.now() < deadline) {
      await new Promise<void>((resolve) => {
        let wakes = this.waiters.get(key)
        if (!wakes) this.waiters.set(key, (wakes = new Set()))
        const done = (): void => {
          clearTimeout(timer)
          wakes.delete(done)
          if (wakes.size === 0 && this.waiters.get(key) === wakes) this.waiters.delete(key)
          resolve()
        }
        const timer = setTimeout(done, SHARED_POLL_MS)
        wakes.add(done)
      })
      if (newer()) return this.byKey.get(key)
      await this.fromShared(key)
      if (newer()) return this.byKey.get(key)
      const locked = await shared.locked(key).catch(() => true)
      if (!locked) return (await this.fromShared(key)) ?? have
    }
    return have
  }

  private rateLimited(target: Target, why: string, have: Entry | undefined): Entry | undefined {
    const code: RelayErrorCode = 'GW_ERR_ACME_RATE_LIMITED'
    this.opts.log('warn', 'acme: order refused by the rate limit', { host: target.key, code, error: new RelayError(code, why).message })
    this.opts.onEvent?.({ event: 'rate_limited', result: 'error', detail: code })
    return have
  }

  private failed(target: Target, event: 'order' | 'renewal', err: Error, backoff: number): void {
    this.failedUntil.set(target.key, this.now() + backoff)
    const code = err instanceof RelayError ? err.code : 'GW_ERR_ACME_ISSUE'
    this.opts.log('warn', 'acme: order failed', { host: target.key, code, error: err.message })
    this.opts.onEvent?.({ event, result: 'error', detail: code })
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
    const entry: Entry = { stored, context: pairContext({ cert: stored.cert, key: stored.key }) }
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
    this.opts.shared?.deleteCert(entry.stored.host).catch(() => {})
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
      void Promise.resolve(target ? this.opts.allowed(host) : false).catch(() => true).then((allowed) => {
        if (this.closed) return
        if (target && allowed) {
          this.ensure(target, 'renewal')
        } else if (entry.stored.notAfter <= this.now() && this.byKey.get(host) === entry) {
          this.uninstall(entry)
          this.opts.log('info', 'acme: expired certificate dropped; no agent holds its host', { host })
        }
      })
    }
  }
}

/** An HTTP-01 token as a CA makes them (base64url); anything else is not looked up in a cluster. */
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/

function reply(res: ServerResponse, keyAuthorization: string): true {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(keyAuthorization), 'cache-control': 'no-store' })
  res.end(keyAuthorization)
  return true
}

/** A server name as a certificate could be ordered for it, or undefined (IP literals, junk). */
export function normalizeHost(servername: string | undefined): string | undefined {
  if (!servername) return undefined
  const host = servername.toLowerCase().replace(/\.$/, '')
  return HOST.test(host) ? host : undefined
}
