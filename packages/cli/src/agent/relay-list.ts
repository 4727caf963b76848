/**
 * The relays an agent may connect to: the one it was given, then the other relays of
 * its cluster, which a clustered relay lists in its welcome. After a link is lost or a
 * connection fails the agent tries the next one, so when one relay of a cluster dies its
 * agents move to another and keep their names (the cluster shares them).
 *
 * Only URLs of the scheme the agent was given are taken: an agent told to use TLS never
 * moves to plain HTTP, and one told to use HTTP is not handed a certificate it cannot
 * check.
 */
import { agentUrl } from './relay-connection.js'

/** Relays learned from one welcome, and kept in all, at most. */
const MAX_LEARNED = 32
const MAX_KEPT = 64

export class RelayList {
  private readonly urls: string[]
  private readonly keys: Set<string>
  private readonly scheme: string
  private index = 0

  constructor(first: string) {
    this.urls = [first]
    const url = agentUrl(first)
    this.scheme = url.protocol
    this.keys = new Set([url.href])
  }

  get current(): string {
    return this.urls[this.index % this.urls.length]!
  }

  get all(): readonly string[] {
    return this.urls
  }

  learn(relays: unknown): void {
    if (!Array.isArray(relays)) return
    for (const relay of relays.slice(0, MAX_LEARNED)) {
      if (typeof relay !== 'string' || relay.length > 2048) continue
      let url: URL
      try {
        url = agentUrl(relay)
      } catch {
        continue
      }
      if (url.protocol !== this.scheme || this.keys.has(url.href) || this.urls.length >= MAX_KEPT) continue
      this.keys.add(url.href)
      this.urls.push(relay)
    }
  }

  /** The current relay failed or went: the next try goes to the next one. */
  failed(): void {
    this.index = (this.index + 1) % this.urls.length
  }
}
