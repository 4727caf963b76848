/**
 * Per-tunnel loopback URLs for the embedded relay (`gw http` without --relay).
 *
 * `http://<name>.localhost:<port>` reaches the relay only from clients that resolve
 * `*.localhost` to loopback: curl and browsers do, Node's resolver (fetch, undici, ws),
 * Python and wget often do not. So each tunnel also gets a port of its own on 127.0.0.1,
 * where every request goes to that tunnel whatever its Host: `http://127.0.0.1:<port>`.
 *
 * A name keeps its port for the relay's life, across the agent's reconnects, so the URL
 * printed at start stays right.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** Names that get a port at most; past it a tunnel has its *.localhost URL only. */
export const MAX_LOOPBACK_LISTENERS = 256

export class LoopbackListeners {
  private readonly byName = new Map<string, { server: Server; url: Promise<string | undefined> }>()

  /** `serve(name)` makes the HTTP server whose every request is the tunnel `name`'s. */
  constructor(private readonly serve: (name: string) => Server, private readonly host = '127.0.0.1') {}

  /** The name's loopback URL, listening when this resolves; undefined when no port could be had. */
  urlFor(name: string): Promise<string | undefined> {
    const known = this.byName.get(name)
    if (known) return known.url
    if (this.byName.size >= MAX_LOOPBACK_LISTENERS) return Promise.resolve(undefined)
    const server = this.serve(name)
    const url = new Promise<string | undefined>((resolve) => {
      server.once('error', () => resolve(undefined))
      server.listen(0, this.host, () => resolve(`http://${this.host}:${(server.address() as AddressInfo).port}`))
    })
    this.byName.set(name, { server, url })
    return url
  }

  servers(): Server[] {
    return [...this.byName.values()].map((l) => l.server)
  }

  async close(): Promise<void> {
    await Promise.all(this.servers().map((server) => new Promise<void>((resolve) => {
      if (!server.listening) return resolve()
      server.close(() => resolve())
      server.closeAllConnections()
    })))
  }
}
