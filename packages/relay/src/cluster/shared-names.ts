/**
 * Name ownership shared by every relay of a cluster, with the rules of names.json
 * (names.ts): a name belongs to the owner that first held it; a random name stays its
 * owner's while an agent holds it anywhere in the cluster and for 7 days after, a
 * requested name for 90 days; one owner holds at most 256 names. "Held anywhere" is the
 * presence of the name (presence.ts): a name some relay still announces never expires.
 *
 * The claims are made in the shared state (backend.ts): Redis (a Lua script) or the
 * primary of `--workers` (NameRegistry, the lone relay's code). TCP ports (tcp endpoints)
 * follow the same rules, owned apart (kind `port`).
 */
import { GwError } from '@gw/protocol'
import { DEFAULT_MAX_NAMES_PER_OWNER, randomName, type NameStore } from '../names.js'
import type { ClaimResult, ClusterBackend, Kind } from './backend.js'

export function unavailable(err: unknown, describe = 'Redis'): GwError {
  if (err instanceof GwError) return err
  return new GwError('GW_ERR_CLUSTER_UNAVAILABLE', `the relay cannot reach the cluster's shared state (${describe}) right now: ${(err as Error).message}; the agent retries by itself`)
}

export class SharedNameStore implements NameStore {
  /** name → owner, as last read or written here: answers `owner()` without a round trip. */
  private readonly cache = new Map<string, string>()
  held: { has(name: string): boolean } = new Set<string>()

  constructor(private readonly backend: ClusterBackend, readonly kind: Kind = 'name', private readonly maxPerOwner = DEFAULT_MAX_NAMES_PER_OWNER) {}

  /** Read every owner into the cache, so a relay that starts knows every name at once. */
  async load(): Promise<number> {
    for (const [name, owner] of await this.backend.owners(this.kind)) this.cache.set(name, owner)
    return this.cache.size
  }

  owner(name: string): string | undefined {
    return this.cache.get(name)
  }

  /** What a lookup just said about `name`. */
  learn(name: string, owner: string | undefined): void {
    if (owner === undefined) this.cache.delete(name)
    else this.cache.set(name, owner)
  }

  /** The owner as the shared state has it now (and the cache learns it). */
  async fetchOwner(name: string): Promise<string | undefined> {
    const owner = await this.backend.ownerOf(this.kind, name)
    this.learn(name, owner)
    return owner
  }

  async claim(name: string, owner: string): Promise<void> {
    const result = await this.run(name, owner, 'claim')
    if (result === 'TAKEN') {
      await this.fetchOwner(name).catch(() => {})
      throw this.kind === 'port'
        ? new GwError('GW_ERR_TCP_PORT_TAKEN', `TCP port ${name} belongs to another authtoken in this relay's cluster; leave the port out for a free one`)
        : new GwError('GW_ERR_NAME_TAKEN', `the name "${name}" belongs to another authtoken; pick another name`)
    }
    if (result === 'LIMIT') this.limit(name)
    this.cache.set(name, owner)
  }

  /**
   * Claim `name`, which the relay chose, for `owner` as a fresh random entry: false when
   * anyone (`owner` too) holds it already. For TCP ports the relay picks from its range.
   */
  async claimFresh(name: string, owner: string): Promise<boolean> {
    const result = await this.run(name, owner, 'random')
    if (result === 'EXISTS') {
      await this.fetchOwner(name).catch(() => {})
      return false
    }
    if (result === 'LIMIT') this.limit(name)
    this.cache.set(name, owner)
    return true
  }

  /** Drop `owner`'s claim on `name` (a port claimed but never listened on). */
  async forget(name: string, owner: string): Promise<void> {
    if (this.cache.get(name) === owner) this.cache.delete(name)
    await this.backend.forget(this.kind, name, owner).catch(() => {})
  }

  async claimRandom(owner: string): Promise<string> {
    for (;;) {
      const name = randomName()
      const result = await this.run(name, owner, 'random')
      if (result === 'EXISTS') continue
      if (result === 'LIMIT') this.limit(name)
      this.cache.set(name, owner)
      return name
    }
  }

  private async run(name: string, owner: string, mode: 'claim' | 'random'): Promise<ClaimResult> {
    try {
      return await this.backend.claim(this.kind, name, owner, mode, this.maxPerOwner)
    } catch (err) {
      throw unavailable(err, this.backend.describe)
    }
  }

  private limit(name: string): never {
    if (this.kind === 'port') {
      throw new GwError('GW_ERR_TCP_PORT_UNAVAILABLE', `cannot claim TCP port ${name}: this authtoken already holds ${this.maxPerOwner} ports; reuse one of them, or ask the relay operator`)
    }
    throw new GwError(
      'GW_ERR_NAME_LIMIT',
      `cannot claim "${name}": this authtoken already holds ${this.maxPerOwner} names; reuse one of them, or ask the relay operator`,
    )
  }

  release(name: string): void {
    this.touch([name])
  }

  /** Names held now count as seen now (a held name's clock starts when its last agent leaves). */
  touch(names: string[]): void {
    if (names.length === 0) return
    this.backend.touch(this.kind, names).catch(() => {
      // The shared state is away: the names stay held (presence), and the next touch sets the time.
    })
  }

  async flush(): Promise<void> {}
}
