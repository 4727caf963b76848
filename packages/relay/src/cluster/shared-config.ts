/**
 * Tokens and limits from the config file, shared by the relays of a cluster through
 * Redis. A relay started with `--config` (tokens or limits in it) writes them to
 * `{gw}:config` at start and at every reload, and says so on the `{gw}:config` channel;
 * every relay of the cluster takes the newest document, at start and when told, so a
 * relay whose own file lacks a token (or that has no file) accepts it, and a reload on one
 * relay reaches all: new tokens work everywhere, removed ones are revoked everywhere.
 *
 * The newest document wins, whoever wrote it: keep one file on every relay that has
 * `--config` (or give it to one relay). Flag tokens (`--authtoken`, `--authtokens-file`)
 * stay each relay's own. Only SHA-256 digests are written, never a token.
 */
import { createHash } from 'node:crypto'
import type { TokenEntry, TokenLimits } from '../access.js'
import type { LogFn } from '../options.js'
import type { ClusterBackend } from './backend.js'
import { KEY_PREFIX } from './redis-backend.js'

export const CONFIG_CHANNEL = `${KEY_PREFIX}config`

export interface SharedConfig {
  tokens: TokenEntry[]
  limits: TokenLimits
  /** The relay that wrote it, and when (ms since the epoch). */
  relay: string
  at: number
  /** SHA-256 of the tokens and limits: equal documents are not written again. */
  hash: string
}

interface WireToken {
  label: string
  sha256: string
  names: string[]
  tcpPorts: number[]
  limits: TokenLimits
}

function wire(tokens: TokenEntry[]): WireToken[] {
  return tokens.map((t) => ({ label: t.label, sha256: t.digest.toString('hex'), names: t.names, tcpPorts: t.tcpPorts, limits: t.limits }))
}

function hashOf(tokens: TokenEntry[], limits: TokenLimits): string {
  return createHash('sha256').update(JSON.stringify({ tokens: wire(tokens), limits })).digest('hex')
}

const LIMIT_KEYS = ['tunnels', 'streams', 'rps', 'bandwidth', 'headerSize', 'bodySize'] as const

function parseLimits(raw: unknown): TokenLimits | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined
  const limits: TokenLimits = {}
  for (const key of LIMIT_KEYS) {
    const value = (raw as Record<string, unknown>)[key]
    if (value === undefined) continue
    if (typeof value !== 'number' || !(value > 0)) return undefined
    limits[key] = value
  }
  return limits
}

/** The document in Redis, or undefined when there is none or it is not one of ours. */
export function parseSharedConfig(raw: string | null): SharedConfig | undefined {
  if (raw === null) return undefined
  try {
    const doc = JSON.parse(raw) as { tokens?: unknown; limits?: unknown; relay?: unknown; at?: unknown; hash?: unknown }
    if (!Array.isArray(doc.tokens) || typeof doc.relay !== 'string' || typeof doc.at !== 'number' || typeof doc.hash !== 'string') return undefined
    const limits = parseLimits(doc.limits ?? {})
    if (!limits) return undefined
    const tokens: TokenEntry[] = []
    for (const t of doc.tokens as WireToken[]) {
      const tokenLimits = parseLimits(t?.limits ?? {})
      if (typeof t?.label !== 'string' || typeof t.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(t.sha256) || !tokenLimits) return undefined
      if (!Array.isArray(t.names) || !t.names.every((n) => typeof n === 'string')) return undefined
      if (!Array.isArray(t.tcpPorts) || !t.tcpPorts.every((p) => Number.isInteger(p))) return undefined
      tokens.push({ label: t.label, digest: Buffer.from(t.sha256, 'hex'), names: t.names, tcpPorts: t.tcpPorts, limits: tokenLimits })
    }
    return { tokens, limits, relay: doc.relay, at: doc.at, hash: doc.hash }
  } catch {
    return undefined
  }
}

export class ConfigShare {
  /** The hash of the document this relay runs with. */
  private current: string | undefined

  constructor(private readonly backend: ClusterBackend, private readonly relay: string, private readonly log: LogFn) {}

  async read(): Promise<SharedConfig | undefined> {
    return parseSharedConfig(await this.backend.readConfig())
  }

  /** This relay runs with `tokens` and `limits` now (its config file): the cluster's, from now on. */
  async publish(tokens: TokenEntry[], limits: TokenLimits): Promise<void> {
    const hash = hashOf(tokens, limits)
    this.current = hash
    const existing = await this.read().catch(() => undefined)
    if (existing?.hash === hash) return
    const doc = { tokens: wire(tokens), limits, relay: this.relay, at: Date.now(), hash }
    await this.backend.writeConfig(JSON.stringify(doc))
    await this.backend.publish(CONFIG_CHANNEL, JSON.stringify({ relay: this.relay, hash }))
    this.log('info', 'tokens and limits from the config file shared with the cluster', { tokens: tokens.length })
  }

  /** This relay took the cluster's document (not its own file's). */
  adopted(doc: SharedConfig): void {
    this.current = doc.hash
  }

  /**
   * Call `apply` with each newer document another relay writes; resolves once subscribed.
   * `recheck()` (after Redis returns) reads the document again in case a message was missed.
   */
  async follow(apply: (doc: SharedConfig) => void): Promise<{ recheck(): Promise<void> }> {
    const check = async (): Promise<void> => {
      const doc = await this.read()
      if (!doc || doc.hash === this.current) return
      this.current = doc.hash
      apply(doc)
    }
    await this.backend.subscribe(CONFIG_CHANNEL, (raw: string) => {
      let message: { relay?: unknown; hash?: unknown }
      try {
        message = JSON.parse(raw) as typeof message
      } catch {
        return
      }
      if (message.relay === this.relay || message.hash === this.current) return
      check().catch((err: Error) => this.log('warn', 'cannot read the cluster\'s tokens and limits from ${this.backend.describe}', { error: err.message }))
    })
    return { recheck: check }
  }
}
