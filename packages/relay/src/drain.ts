/**
 * A graceful stop (SIGTERM on `gw relay`, a deploy):
 *
 *   stop listening → GoAway to every agent → requests in flight finish → close
 *
 * New connections are refused from the first step (the listening sockets close); a
 * request that still comes on a kept-alive connection is served and answered with
 * `Connection: close`, and `/healthz` answers 503 so a load balancer stops choosing this
 * relay. The GoAway tells each agent to connect again at once (through the same URL, to
 * another relay) while this link finishes the requests it carries. After `timeoutMs`
 * whatever is still open is cut.
 */
import type { Server } from 'node:http'

export interface Drainable {
  /** Set once: requests get `Connection: close`, agents and their upgrades are refused. */
  draining: boolean
  /** HTTP requests whose response has not finished, and tunnelled streams still open. */
  busy(): number
  /** Send every agent link a GoAway; open streams go on. */
  goAwayAll(): void
}

/** Resolves with true when everything in flight finished, false when the time ran out. */
export async function drain(core: Drainable, servers: Server[], timeoutMs: number): Promise<boolean> {
  core.draining = true
  for (const server of servers) {
    // Stops accepting; Node also closes the connections that sit idle between requests.
    server.close()
    server.closeIdleConnections()
  }
  core.goAwayAll()
  const deadline = Date.now() + timeoutMs
  while (core.busy() > 0) {
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 25))
    // A connection that finished its last request while draining is idle now.
    for (const server of servers) server.closeIdleConnections()
  }
  return true
}
