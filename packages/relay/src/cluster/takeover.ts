/**
 * Takeover across relays. On one relay, an agent of the same token that comes back for a
 * name (not pooling) takes it over at once from the connection the relay still believes
 * in (relay.ts, `admit`). In a cluster the old connection may be on another relay: the
 * relay that admitted the newcomer publishes the takeover on a Redis channel, and every
 * other relay drops its links for that name of that owner, telling them GW_ERR_REPLACED,
 * as a lone relay does. Without it a relay with a half-open link would keep announcing the
 * name and receive its requests until its heartbeat timed out.
 */
import type { ClusterBackend } from './backend.js'
import type { AgentLink } from '../agent-link.js'
import type { RouteTable } from '../routes.js'
import { KEY_PREFIX } from './redis-backend.js'

export const TAKEOVER_CHANNEL = `${KEY_PREFIX}takeover`

interface TakeoverMessage {
  relay: string
  name: string
  owner: string
  /** A TCP port (its number in `name`), not an HTTP name. */
  tcp?: true
  /**
   * When the link that took over arrived (its relay's clock, epoch ms). Only older links
   * are dropped: a relay's message about its own earlier link could reach another relay
   * after a newer link of the same owner came in there (two connections a few ms apart),
   * and without this dropped the newer one too, leaving the name held by none (the
   * relay-cluster takeover test's flake under load). Relays' clocks agree to well within
   * the time a real takeover follows the link it replaces (an agent that reconnects).
   */
  at?: number
}

/** The names of `names` whose route here is one agent that does not pool: a takeover. */
export function takenOver(routes: RouteTable, names: string[]): string[] {
  return names.filter((name) => {
    const links = routes.linksOf(name)
    return links.length === 1 && links[0]!.endpoints.some((e) => e.name === name && e.pooling !== true)
  })
}

export function publishTakeover(backend: ClusterBackend, relay: string, owner: string, names: string[], at: number, tcp = false): void {
  for (const name of names) {
    backend.publish(TAKEOVER_CHANNEL, JSON.stringify({ relay, name, owner, at, ...(tcp ? { tcp: true as const } : {}) } satisfies TakeoverMessage)).catch(() => {
      // Redis is away: the old link goes when its heartbeat times out.
    })
  }
}

/**
 * Listen for takeovers by other relays; `drop` is called with this relay's links that lost
 * the name (or, `tcp`, the port). Resolves once subscribed; the subscription follows Redis across restarts.
 */
export async function listenForTakeovers(
  backend: ClusterBackend,
  self: string,
  routes: RouteTable,
  tcpRoutes: RouteTable,
  drop: (name: string, links: AgentLink[], tcp: boolean) => void,
): Promise<void> {
  await backend.subscribe(TAKEOVER_CHANNEL, (raw: string) => {
    let message: TakeoverMessage
    try {
      message = JSON.parse(raw) as TakeoverMessage
    } catch {
      return
    }
    if (typeof message?.name !== 'string' || typeof message.owner !== 'string' || message.relay === self) return
    const tcp = message.tcp === true
    const at = typeof message.at === 'number' ? message.at : Infinity
    const links = (tcp ? tcpRoutes : routes).linksOf(message.name).filter((l) => l.owner === message.owner && l.openedAt < at)
    if (links.length > 0) drop(message.name, [...links], tcp)
  })
}
