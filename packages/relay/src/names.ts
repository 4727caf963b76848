/**
 * Public names: random ones, requested ones, and who owns each.
 *
 * A name belongs to the owner that first held it: the authtoken's digest, or on an
 * anonymous relay the agent's id. Ownership outlives connections and, when the relay
 * has a state directory, restarts, so an agent that comes back gets its name and a
 * stranger cannot take it in between.
 */
import { randomInt } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { GwError } from '@gw/protocol'

const ADJECTIVES = (
  'amber bold brave brisk calm clever cosmic crisp dapper eager early fancy fond frosty gentle glad ' +
  'golden grand happy hardy hidden humble jolly keen kind lively lucky mellow merry mighty misty modest ' +
  'nimble noble odd plucky polite proud quick quiet rapid rosy rustic sage shiny silent silver sleek ' +
  'smart snowy solid sonic spry steady sunny swift tidy tiny upbeat vivid warm wild wise witty young zesty'
).split(' ')

const NOUNS = (
  'badger beacon bison breeze brook canyon cedar cloud comet coral crane creek delta dune eagle ember ' +
  'falcon fern finch fjord forest fox garden glacier harbor hawk heron island jaguar koala lagoon lark ' +
  'lemur lotus maple meadow mesa moose nebula oak orca otter owl panda pebble pine planet prairie puffin ' +
  'quartz raven reef river robin salmon sparrow spruce summit thunder tiger tulip valley walrus willow'
).split(' ')

// No 0/o or 1/l: a name is read aloud and typed by people.
const SUFFIX_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789'
const SUFFIX_LENGTH = 6

/** Entropy of a random name in bits: 6 + 6 + 6×5 = 42. */
export const RANDOM_NAME_BITS =
  Math.log2(ADJECTIVES.length) + Math.log2(NOUNS.length) + SUFFIX_LENGTH * Math.log2(SUFFIX_ALPHABET.length)

export function randomName(): string {
  let suffix = ''
  for (let i = 0; i < SUFFIX_LENGTH; i++) suffix += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)]
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${suffix}`
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const RESERVED = new Set(['www'])

/** Normalise and check a requested name; throws a GwError with the reason. */
export function checkName(requested: string): string {
  const name = requested.toLowerCase()
  if (!LABEL.test(name)) {
    throw new GwError(
      'GW_ERR_NAME_INVALID',
      `"${requested}" is not a valid name: use 1-63 letters, digits and hyphens, not starting or ending with a hyphen`,
    )
  }
  if (RESERVED.has(name)) throw new GwError('GW_ERR_NAME_RESERVED', `"${name}" is reserved by the relay; pick another name`)
  return name
}

/** A random name with no agent for this long is free again. */
export const RANDOM_NAME_TTL_MS = 7 * 24 * 3600 * 1000

/**
 * A requested name with no agent for this long is free again. Longer than a random
 * name's: a person typed it and may come back after a holiday; but not forever, or any
 * token holder could hoard names one hello after another.
 */
export const REQUESTED_NAME_TTL_MS = 90 * 24 * 3600 * 1000

/** Names one owner (an authtoken, or an agent id on an anonymous relay) may hold at once. */
export const DEFAULT_MAX_NAMES_PER_OWNER = 256

/**
 * Claims within this long share one write of names.json: a client that loops over
 * hellos costs one write per batch, not one synchronous rewrite per name.
 */
export const SAVE_BATCH_MS = 100

interface NameEntry {
  owner: string
  /** Given at random, not asked for: it expires once unused for RANDOM_NAME_TTL_MS. */
  random: boolean
  /** Epoch ms when an agent last held it. */
  seen: number
}

/**
 * Who owns each name, with the rules above: `NameRegistry` keeps them in names.json; a
 * cluster keeps them in its shared state (cluster/shared-names.ts): Redis, or the primary
 * process of `--workers`, which keeps them with this class. Claims
 * may be asynchronous; the rest never waits.
 */
export interface NameStore {
  /** The owner as this relay knows it now (a cluster's store answers from its cache). */
  owner(name: string): string | undefined
  /** Claim `name` for `owner`: GW_ERR_NAME_TAKEN when another owner holds it, GW_ERR_NAME_LIMIT past the cap. */
  claim(name: string, owner: string): void | Promise<void>
  /** A fresh random name, claimed for `owner`. */
  claimRandom(owner: string): string | Promise<string>
  /** The last agent holding `name` here went away now: its time to expire starts. */
  release(name: string): void
  /** Names an agent holds on this relay right now (set by the relay), which never expire. */
  held: { has(name: string): boolean }
  /** Write any pending change now (the relay calls this when it closes). */
  flush(): Promise<void>
}

export interface NameRegistryOptions {
  now?: () => number
  maxNamesPerOwner?: number
  /** The file in the state directory; default names.json (TCP ports use tcp-ports.json). */
  file?: string
}

export class NameRegistry implements NameStore {
  private readonly entries = new Map<string, NameEntry>()
  private readonly perOwner = new Map<string, number>()
  private readonly file: string | undefined
  private readonly now: () => number
  /** Names one owner may hold (the primary of `--workers` sets the cap its workers ask with). */
  maxPerOwner: number
  private saveTimer: NodeJS.Timeout | undefined
  private writing: Promise<void> | undefined
  private dirty = false
  /** Writes of names.json so far (the stall test counts them). */
  writes = 0

  constructor(stateDir?: string, options: NameRegistryOptions | (() => number) = {}) {
    const opts = typeof options === 'function' ? { now: options } : options
    this.now = opts.now ?? Date.now
    this.maxPerOwner = opts.maxNamesPerOwner ?? DEFAULT_MAX_NAMES_PER_OWNER
    if (!stateDir) return
    mkdirSync(stateDir, { recursive: true })
    this.file = join(stateDir, opts.file ?? 'names.json')
    try {
      const saved = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, NameEntry>
      for (const [name, entry] of Object.entries(saved)) {
        if (typeof entry?.owner === 'string') this.set(name, { owner: entry.owner, random: entry.random === true, seen: Number(entry.seen) || 0 })
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (this.prune()) this.saveNow()
  }

  owner(name: string): string | undefined {
    return this.entries.get(name)?.owner
  }

  /**
   * Claim `name` for `owner`. Throws GW_ERR_NAME_TAKEN when another owner holds it.
   * `random`: a new entry was chosen by the relay, not asked for, and expires as a random name.
   */
  claim(name: string, owner: string, random = false): void {
    let current = this.entries.get(name)
    // Past its time: free, as if pruned (the rule the cluster's claim applies too).
    if (current && this.expired(name, current)) {
      this.delete(name)
      current = undefined
    }
    if (current && current.owner !== owner) {
      throw new GwError('GW_ERR_NAME_TAKEN', `the name "${name}" belongs to another authtoken; pick another name`)
    }
    if (!current) this.checkRoom(owner, name)
    // An agent coming back asks for its random name by name: it stays a random one.
    this.set(name, { owner, random: current?.random ?? random, seen: this.now() })
    this.save()
  }

  /**
   * Claim `name`, chosen by the relay (a TCP port from its range), for `owner` as a fresh
   * random entry: false when anyone (`owner` too) holds it already.
   */
  claimFresh(name: string, owner: string): boolean {
    const current = this.entries.get(name)
    if (current && !this.expired(name, current)) return false
    if (current) this.delete(name)
    this.checkRoom(owner, name)
    this.set(name, { owner, random: true, seen: this.now() })
    this.save()
    return true
  }

  /** Drop `owner`'s claim on `name` (a port claimed but never listened on). */
  forget(name: string, owner: string): void {
    if (this.entries.get(name)?.owner !== owner) return
    this.delete(name)
    this.save()
  }

  /** Names held now count as seen now. */
  touch(names: Iterable<string>): void {
    const now = this.now()
    let changed = false
    for (const name of names) {
      const entry = this.entries.get(name)
      if (!entry) continue
      entry.seen = now
      changed = true
    }
    if (changed) this.save()
  }

  /** Every [name, owner]. */
  ownerEntries(): Array<[string, string]> {
    return [...this.entries].map(([name, entry]) => [name, entry.owner])
  }

  private expired(name: string, entry: NameEntry): boolean {
    return !this.held.has(name) && entry.seen < this.now() - (entry.random ? RANDOM_NAME_TTL_MS : REQUESTED_NAME_TTL_MS)
  }

  /** How many names `owner` holds. */
  countOf(owner: string): number {
    return this.perOwner.get(owner) ?? 0
  }

  private checkRoom(owner: string, name: string): void {
    if (this.countOf(owner) < this.maxPerOwner) return
    this.prune()
    if (this.countOf(owner) < this.maxPerOwner) return
    throw new GwError(
      'GW_ERR_NAME_LIMIT',
      `cannot claim "${name}": this authtoken already holds ${this.maxPerOwner} names; reuse one of them, or ask the relay operator`,
    )
  }

  private set(name: string, entry: NameEntry): void {
    const previous = this.entries.get(name)
    if (previous) this.perOwner.set(previous.owner, this.countOf(previous.owner) - 1)
    this.entries.set(name, entry)
    this.perOwner.set(entry.owner, this.countOf(entry.owner) + 1)
  }

  private delete(name: string): void {
    const previous = this.entries.get(name)
    if (!previous) return
    this.entries.delete(name)
    this.perOwner.set(previous.owner, this.countOf(previous.owner) - 1)
  }

  /** A fresh random name, claimed for `owner` until it goes unused for RANDOM_NAME_TTL_MS. */
  claimRandom(owner: string): string {
    this.prune()
    for (;;) {
      const name = randomName()
      if (!this.entries.has(name)) {
        this.checkRoom(owner, name)
        this.set(name, { owner, random: true, seen: this.now() })
        this.save()
        return name
      }
    }
  }

  /** The agent holding `name` went away now: its time to expire starts here. */
  release(name: string): void {
    const entry = this.entries.get(name)
    if (!entry) return
    entry.seen = this.now()
    this.save()
  }

  /**
   * Free names unused past their time. A name whose agent is connected is never pruned:
   * its `seen` is refreshed on release, so this only counts time with no agent.
   */
  private prune(held: { has(name: string): boolean } = this.held): boolean {
    const now = this.now()
    let pruned = false
    for (const [name, entry] of this.entries) {
      if (held.has(name)) continue
      if (entry.seen < now - (entry.random ? RANDOM_NAME_TTL_MS : REQUESTED_NAME_TTL_MS)) {
        this.delete(name)
        pruned = true
      }
    }
    return pruned
  }

  /** Names an agent holds right now (set by the relay), which never expire. */
  held: { has(name: string): boolean } = new Set<string>()

  /** Schedule a write: every change within SAVE_BATCH_MS goes out in one. */
  private save(): void {
    if (!this.file) return
    this.dirty = true
    if (this.saveTimer || this.writing) return
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined
      void this.writeOut()
    }, SAVE_BATCH_MS)
    this.saveTimer.unref()
  }

  private async writeOut(): Promise<void> {
    if (!this.file || !this.dirty) return
    this.dirty = false
    const tmp = `${this.file}.tmp`
    const body = JSON.stringify(Object.fromEntries(this.entries))
    this.writes++
    // Write then rename, so a crash mid-write never leaves a truncated registry.
    this.writing = writeFile(tmp, body, { mode: 0o600 }).then(() => rename(tmp, this.file!)).catch(() => {
      // The disk refused (full, read-only): keep serving, and try again with the next change.
      this.dirty = true
    })
    await this.writing
    this.writing = undefined
    if (this.dirty) this.save()
  }

  /** Write any pending change now (the relay calls this when it closes). */
  async flush(): Promise<void> {
    if (this.saveTimer) {
      clearTimeout(this.saveTimer)
      this.saveTimer = undefined
    }
    if (this.writing) await this.writing
    await this.writeOut()
  }

  private saveNow(): void {
    if (!this.file) return
    const tmp = `${this.file}.tmp`
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.entries)), { mode: 0o600 })
    renameSync(tmp, this.file)
  }
}
