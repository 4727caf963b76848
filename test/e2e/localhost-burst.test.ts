/**
 * A `localhost` upstream under a connection burst (issue 10): `gw http 3000` means
 * localhost:3000, which resolves to 127.0.0.1 and ::1, and a service listens on one of
 * them. With a 250 ms happy-eyeballs race per connection, a burst that overflows the
 * service's accept queue made the race give up on the family that was merely slow to
 * answer its SYN: 22–39% of 2,000 concurrent requests failed. The agent now learns once
 * which loopback address a port answers on, and every connection after goes straight there.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Agent as UndiciAgent, request } from 'undici'
import { startStack } from '../helpers/stack.js'

const BURST = 2000

for (const listenOn of ['127.0.0.1', '::1']) {
  describe(`a localhost upstream that listens on ${listenOn} only`, () => {
    it(`answers ${BURST} concurrent requests, none failed`, async () => {
      const stack = await startStack((_req, res) => void setTimeout(() => res.end('ok'), 200), { upstreamHost: listenOn })
      // A backlog far smaller than the burst, as in a single-threaded dev server
      // (Python's http.server listens with 5): SYNs beyond it wait for a retransmit.
      await stack.upstream.close()
      await new Promise<void>((resolve) => stack.upstream.server.listen({ port: stack.upstream.port, host: listenOn, backlog: 8 }, resolve))
      // The agent, relay and upstream share this process: one busy stretch of its event
      // loop while the burst's connections are being made stands for an agent loaded
      // by the burst itself (the timers of pending connects all come due at once).
      // Every 100th connection the upstream sees, the loop stalls for 400 ms.
      let connections = 0
      stack.upstream.server.on('connection', () => {
        if (++connections % 100 !== 0) return
        setImmediate(() => {
          const until = Date.now() + 400
          while (Date.now() < until) { /* busy */ }
        })
      })
      // The agent calls localhost:<port>, as `gw http <port>` does.
      await stack.agent.close()
      const { startAgent } = await import('@gw/cli/agent/agent')
      const agent = await startAgent({ relay: stack.relay.httpUrl!, endpoints: [{ upstream: `localhost:${stack.upstream.port}` }] })
      const host = `${agent.tunnels[0]!.publicName}.localhost`
      const client = new UndiciAgent({ connections: BURST, pipelining: 0 })
      try {
        const statuses = new Map<number | string, number>()
        await Promise.all(
          Array.from({ length: BURST }, async () => {
            let key: number | string
            try {
              const res = await request(`${stack.httpOrigin}/`, { headers: { host }, dispatcher: client, headersTimeout: 60_000 })
              await res.body.text()
              key = res.statusCode === 200 ? 200 : `${res.statusCode} ${res.headers['gw-error-code'] ?? ''}`
            } catch (err) {
              key = (err as NodeJS.ErrnoException).code ?? String(err)
            }
            statuses.set(key, (statuses.get(key) ?? 0) + 1)
          }),
        )
        assert.deepEqual(Object.fromEntries(statuses), { 200: BURST })
      } finally {
        await client.close()
        await agent.close()
        await stack.relay.close()
        await stack.upstream.close()
      }
    })
  })
}
