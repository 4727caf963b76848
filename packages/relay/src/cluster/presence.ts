/**
 * Presence: which relay holds an agent for each name, and where the relays are. Each
 * relay announces the names its agents hold with an expiry, and refreshes them (and its
 * own record) every third of the TTL; a relay that dies stops refreshing, and its
 * entries run out after the TTL (with `--workers` and no Redis, the primary drops a dead
 * worker's at once). A relay that stops cleanly withdraws them at once.
 *
 * TCP ports have presence of their own (kind `port`), and the list of every port some
 * relay holds (`live`), so each relay can listen on them all and forward. Internal
 * endpoints (kind `internal`, entries `<owner> <host>`) have the same, so each relay can
 * tell its agents which ones their token serves anywhere in the cluster. Where it is
 * kept: backend.ts.
 */
import type { ClusterBackend, Located, PresenceKind, RelayRecord } from './backend.js'

export type { Holder, Located, RelayRecord } from './backend.js'

export class Presence {
  constructor(private readonly backend: ClusterBackend, readonly record: RelayRecord, readonly ttlMs: number) {}

  /** This relay holds agents for `names` (HTTP names, or TCP ports) now. */
  announce(names: Iterable<string>, kind: PresenceKind = 'name'): Promise<void> {
    return this.backend.announce(kind, this.record.id, [...names], this.ttlMs)
  }

  /** This relay no longer holds an agent for `names`. */
  withdraw(names: Iterable<string>, kind: PresenceKind = 'name'): Promise<void> {
    return this.backend.withdraw(kind, this.record.id, [...names])
  }

  /**
   * The relay's own record, and its presence for every name and port it holds. What is
   * held is read only once the record is written, with nothing awaited between the read
   * and the announce: a withdraw sent after the read is applied after the announce. (Read
   * before, a name whose agent left meanwhile was announced again after its withdraw and
   * lingered until the TTL.) Returns what it announced.
   */
  async refresh(held: () => Iterable<string>, heldPorts: () => Iterable<string> = () => [], heldInternal: () => Iterable<string> = () => []): Promise<{ names: string[]; ports: string[] }> {
    await this.backend.refresh(this.record, this.ttlMs)
    const names = [...held()]
    const ports = [...heldPorts()]
    const internal = [...heldInternal()]
    await Promise.all([this.announce(names), this.announce(ports, 'port'), this.announce(internal, 'internal')])
    return { names, ports }
  }

  /** Every entry some relay holds now. */
  live(kind: PresenceKind): Promise<string[]> {
    return this.backend.live(kind)
  }

  locate(name: string, kind: PresenceKind = 'name'): Promise<Located> {
    return this.backend.locate(kind, name)
  }

  /** The live relays' records. */
  relays(): Promise<RelayRecord[]> {
    return this.backend.relays()
  }

  /** Leave: the record and every presence entry of this relay go at once. */
  leave(held: Iterable<string>, heldPorts: Iterable<string> = [], heldInternal: Iterable<string> = []): Promise<void> {
    return this.backend.leave(this.record.id, [...held], [...heldPorts], [...heldInternal])
  }
}
