/**
 * The route table: which agent links serve each public name right now.
 *
 * A name has one link, or, when every agent holding it asked for pooling (ngrok's
 * `--pooling-enabled`), several: requests are spread over them, the link with the
 * fewest open streams first and round robin among equals. A link whose agent sent a
 * GoAway (it is leaving: a restart, a shutdown) gets no new requests; the others take
 * them, so an agent that restarts inside a pool costs no failed request.
 *
 * Only names with at least one link are in the table, and the name registry reads it
 * (`has`) as the names an agent holds, which never expire.
 */
import type { AgentLink } from './agent-link.js'

interface Route {
  links: AgentLink[]
  /** Every link asked for pooling; a newcomer that asks too joins instead of replacing. */
  pooled: boolean
  /** Where the next round-robin scan starts. */
  next: number
}

/** What `add` did: the links the newcomer took the name from (same owner, no pooling). */
export interface RouteChange {
  replaced: AgentLink[]
  pooled: boolean
}

export class RouteTable {
  private readonly routes = new Map<string, Route>()

  /** A connected agent holds `name` (it may be leaving, but has not left). */
  has(name: string): boolean {
    return this.routes.has(name)
  }

  names(): string[] {
    return [...this.routes.keys()]
  }

  /** The links holding `name`, in the order they came. */
  linksOf(name: string): readonly AgentLink[] {
    return this.routes.get(name)?.links ?? []
  }

  /**
   * Put `link` on `name`. The caller has checked that the owner may hold the name. When
   * the route and the newcomer both pool, the newcomer joins; otherwise it takes over
   * (the agent came back while the relay still believed in its old connection, or a
   * pooled agent was replaced by one that does not share), and the links it replaced
   * are returned for the caller to tell and close.
   */
  add(name: string, link: AgentLink, pooling: boolean): RouteChange {
    const route = this.routes.get(name)
    if (route && route.pooled && pooling) {
      if (!route.links.includes(link)) route.links.push(link)
      return { replaced: [], pooled: true }
    }
    const replaced = route ? route.links.filter((l) => l !== link) : []
    this.routes.set(name, { links: [link], pooled: pooling, next: 0 })
    return { replaced, pooled: pooling }
  }

  /** Take `link` off `name`. True when the name has no link left (it is offline now). */
  remove(name: string, link: AgentLink): boolean {
    const route = this.routes.get(name)
    if (!route) return false
    const i = route.links.indexOf(link)
    if (i === -1) return false
    route.links.splice(i, 1)
    if (route.links.length > 0) return false
    this.routes.delete(name)
    return true
  }

  /**
   * The link for the next request to `name`: among links neither closed nor going away,
   * the one with the fewest open streams, ties broken round robin. Undefined when the
   * name has no such link (no agent, or every agent is leaving).
   */
  pick(name: string): AgentLink | undefined {
    const route = this.routes.get(name)
    if (!route) return undefined
    const { links } = route
    if (links.length === 1) {
      const only = links[0]!
      return usable(only) ? only : undefined
    }
    let best: AgentLink | undefined
    let bestStreams = Infinity
    const start = route.next % links.length
    for (let k = 0; k < links.length; k++) {
      const link = links[(start + k) % links.length]!
      if (!usable(link)) continue
      const streams = link.session.streamCount
      if (streams < bestStreams) {
        best = link
        bestStreams = streams
      }
    }
    route.next = (start + 1) % links.length
    return best
  }
}

function usable(link: AgentLink): boolean {
  return !link.closed && !link.session.peerGoingAway
}
