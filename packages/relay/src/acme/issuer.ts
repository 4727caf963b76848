/**
 * One ACME account and the orders made with it, through acme-client. The relay answers
 * the challenges itself: HTTP-01 from `http01` (read by the relay's HTTP listener before
 * tunnel routing), TLS-ALPN-01 from `alpn` (read by the HTTPS listener's ClientHello
 * peek, tls-front.ts), DNS-01 through the operator's hook (dns-hook.ts).
 *
 * The order is driven step by step rather than with acme-client's `auto()`: the
 * authorizations of one order are satisfied one after another (a wildcard and its bare
 * domain share one TXT name), and acme-client's own pre-check of each challenge is not
 * made (it asks the system resolver, which for on-demand names proves nothing the
 * CA's validation does not: the relay itself is what answers).
 */
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import { Agent } from 'node:https'
import type { Authorization, Client } from 'acme-client'
import { RelayError } from '../errors.js'
import type { LogFn } from '../options.js'
import { runDnsHook } from './dns-hook.js'

export type ChallengeKind = 'http-01' | 'tls-alpn-01' | 'dns-01'

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory'

export interface IssuerOptions {
  directoryUrl: string
  email: string
  /** PEM of a CA to trust for the directory's HTTPS (a private ACME CA; pebble in tests). */
  directoryCa?: string
  /** Command for DNS-01 (see dns-hook.ts). */
  dnsHook?: string
  log: LogFn
  /** Longest a single HTTP request to the CA may take, ms. */
  requestTimeout?: number
  /**
   * A cluster's shared state (shared-acme.ts): each pending challenge is written there
   * before the CA is told to validate, so any relay of the cluster answers it.
   */
  shared?: ChallengeShare
}

/** Where a cluster keeps pending challenges (a part of shared-acme.ts's SharedAcme). */
export interface ChallengeShare {
  setChallenge(id: string, value: string, ttlMs: number): Promise<void>
  clearChallenge(id: string): Promise<void>
}

/** A shared challenge lives this long at most (an order that dies leaves nothing behind for longer). */
export const SHARED_CHALLENGE_TTL_MS = 10 * 60_000

type AcmeModule = typeof import('acme-client')

export class AcmeIssuer {
  /** token → key authorization, for `GET /.well-known/acme-challenge/<token>`. */
  readonly http01 = new Map<string, string>()
  /** host → the self-signed certificate that answers its TLS-ALPN-01 challenge. */
  readonly alpn = new Map<string, SecureContext>()
  private account: Promise<void> | undefined
  private ejectInterceptor: (() => void) | undefined

  private constructor(
    private readonly acme: AcmeModule,
    private readonly client: Client,
    private readonly opts: IssuerOptions,
  ) {}

  /** acme-client (with axios and its crypto) is loaded only on a relay that uses ACME. */
  static async create(opts: IssuerOptions, accountKey: string): Promise<AcmeIssuer> {
    const acme = await import('acme-client')
    const client = new acme.Client({ directoryUrl: opts.directoryUrl, accountKey, backoffAttempts: 12, backoffMin: 500, backoffMax: 10_000 })
    const issuer = new AcmeIssuer(acme, client, opts)
    issuer.scopeHttp(opts)
    return issuer
  }

  static async createAccountKey(): Promise<string> {
    const acme = await import('acme-client')
    return (await acme.crypto.createPrivateEcdsaKey('P-256')).toString()
  }

  /**
   * acme-client sends every request through one shared axios instance; the CA given
   * with the directory, and a timeout, apply to requests for the directory's origin only.
   */
  private scopeHttp(opts: IssuerOptions): void {
    const origin = new URL(opts.directoryUrl).origin
    const agent = opts.directoryCa ? new Agent({ ca: [...rootCertificates, opts.directoryCa], keepAlive: true }) : undefined
    const timeout = opts.requestTimeout ?? 30_000
    const id = this.acme.axios.interceptors.request.use((config) => {
      if (typeof config.url === 'string' && config.url.startsWith(origin)) {
        if (agent) config.httpsAgent = agent
        if (!config.timeout) config.timeout = timeout
      }
      return config
    })
    this.ejectInterceptor = () => {
      this.acme.axios.interceptors.request.eject(id)
      agent?.destroy()
    }
  }

  private ensureAccount(): Promise<void> {
    this.account ??= this.client
      .createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${this.opts.email}`] })
      .then(() => undefined, (err: unknown) => {
        this.account = undefined
        throw err
      })
    return this.account
  }

  /** Orders a certificate for `hosts` (the first is its subject), satisfying each authorization with `kind`. */
  async order(hosts: string[], kind: ChallengeKind): Promise<{ cert: string; key: string }> {
    try {
      await this.ensureAccount()
      const order = await this.client.createOrder({ identifiers: hosts.map((value) => ({ type: 'dns', value })) })
      const authorizations = await this.client.getAuthorizations(order)
      for (const authz of authorizations) {
        if (authz.status === 'valid') continue
        await this.authorize(authz, kind)
      }
      const key = await this.acme.crypto.createPrivateEcdsaKey('P-256')
      const [, csr] = await this.acme.crypto.createCsr({ commonName: hosts[0]!, altNames: hosts }, key)
      const finalized = await this.client.finalizeOrder(order, csr)
      const cert = await this.client.getCertificate(finalized)
      return { cert, key: key.toString() }
    } catch (err) {
      if (err instanceof RelayError) throw err
      throw new RelayError('GW_ERR_ACME_ISSUE', `the ACME server at ${this.opts.directoryUrl} did not issue a certificate for ${hosts.join(', ')}: ${(err as Error).message}`, { cause: err })
    }
  }

  private async authorize(authz: Authorization, kind: ChallengeKind): Promise<void> {
    const host = authz.identifier.value.toLowerCase()
    const challenge = authz.challenges.find((c) => c.type === kind)
    if (!challenge) {
      const offered = authz.challenges.map((c) => c.type).join(', ')
      throw new RelayError('GW_ERR_ACME_ISSUE', `the ACME server offers ${offered || 'no challenge'} for ${authz.wildcard ? '*.' : ''}${host}, not ${kind}`)
    }
    const keyAuthorization = await this.client.getChallengeKeyAuthorization(challenge)
    let cleanup: () => Promise<void>
    const shared = this.opts.shared
    let answer: [id: string, value: string] | undefined
    if (kind === 'http-01') {
      const id = `http-01:${challenge.token}`
      this.http01.set(challenge.token, keyAuthorization)
      cleanup = async () => {
        this.http01.delete(challenge.token)
        await shared?.clearChallenge(id)
      }
      answer = [id, keyAuthorization]
    } else if (kind === 'tls-alpn-01') {
      const alpnKey = await this.acme.crypto.createPrivateEcdsaKey('P-256')
      const [, alpnCert] = await this.acme.crypto.createAlpnCertificate(authz, keyAuthorization, alpnKey)
      const id = `tls-alpn-01:${host}`
      this.alpn.set(host, createSecureContext({ key: alpnKey, cert: alpnCert }))
      cleanup = async () => {
        this.alpn.delete(host)
        await shared?.clearChallenge(id)
      }
      answer = [id, JSON.stringify({ cert: alpnCert.toString(), key: alpnKey.toString() })]
    } else {
      const hook = this.opts.dnsHook
      if (!hook) throw new RelayError('GW_ERR_ACME_ISSUE', `DNS-01 for ${host} needs --acme-dns-hook`)
      const record = `_acme-challenge.${host}`
      await runDnsHook(hook, 'set', record, keyAuthorization, host)
      cleanup = () => runDnsHook(hook, 'clear', record, keyAuthorization, host)
    }
    try {
      if (answer) await this.share(shared, answer[0], answer[1], host)
      await this.client.completeChallenge(challenge)
      await this.client.waitForValidStatus(challenge)
    } finally {
      await cleanup().catch((err: Error) => this.opts.log('warn', 'acme challenge cleanup failed', { host, challenge: kind, error: err.message }))
    }
  }

  /** The challenge's answer in the cluster's shared state; when it cannot be written, the order fails (the CA would ask another relay). */
  private async share(shared: ChallengeShare | undefined, id: string, value: string, host: string): Promise<void> {
    if (!shared) return
    try {
      await shared.setChallenge(id, value, SHARED_CHALLENGE_TTL_MS)
    } catch (err) {
      throw new RelayError('GW_ERR_ACME_ISSUE', `the ${id.slice(0, id.indexOf(':'))} challenge for ${host} could not be shared with the cluster's relays: ${(err as Error).message}`, { cause: err })
    }
  }

  close(): void {
    this.ejectInterceptor?.()
    this.http01.clear()
    this.alpn.clear()
  }
}
