/**
 * A real relay and agent for policy end-to-end tests: the agent serves one endpoint
 * with the given compiled policy, and requests go to the relay's public port with the
 * tunnel's Host, through yamux, the agent's policy pipeline and a real upstream.
 */
import { rmSync } from 'node:fs'
import { lookup as dnsLookup } from 'node:dns'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent as UndiciAgent, request, setGlobalDispatcher, type Dispatcher } from 'undici'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import type { CompiledPolicy } from '@gw/cli/policy/index'
import type { AgentEvents } from '@gw/cli/agent/events'
import { tempDir } from '../helpers/stack.js'

export interface PolicyTunnel {
  relay: Relay
  agent: Agent
  host: string
  origin: string
  fetch(path: string, options?: { method?: string; headers?: Record<string, string>; body?: string | Buffer }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; text: string }>
  close(): Promise<void>
}

export async function startPolicyTunnel(policy: CompiledPolicy, upstreamUrl: string, events?: AgentEvents): Promise<PolicyTunnel> {
  const stateDir = tempDir('gw-policy-e2e-')
  const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir })
  const agent = await startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstreamUrl, policy }], ...(events ? { events } : {}) })
  const host = `${agent.tunnels[0]!.publicName}.localhost`
  const origin = relay.httpUrl!
  return {
    relay,
    agent,
    host,
    origin,
    async fetch(path, options = {}) {
      const res = await request(`${origin}${path}`, {
        method: (options.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: { host, ...options.headers },
        body: options.body,
      })
      const body = Buffer.from(await res.body.arrayBuffer())
      return { status: res.statusCode, headers: res.headers, body, text: body.toString('utf8') }
    },
    async close() {
      await agent.close()
      await relay.close()
      rmSync(stateDir, { recursive: true, force: true })
    },
  }
}

/**
 * A policy tunnel reached the way a public client reaches one: at
 * `http://<name>.localhost:<relay port>`. `*.localhost` does not resolve everywhere,
 * so this process's undici (and Node's fetch, which shares its global dispatcher)
 * resolves it to 127.0.0.1, as curl and browsers do.
 */
export interface PolicyGateway {
  url: string
  tunnel: PolicyTunnel
  close(): Promise<void>
}

export async function startPolicyGateway(policy: CompiledPolicy, upstreamUrl: string, events?: AgentEvents): Promise<PolicyGateway> {
  resolveLocalhostNames()
  const tunnel = await startPolicyTunnel(policy, upstreamUrl, events)
  return { url: `http://${tunnel.host}:${new URL(tunnel.origin).port}`, tunnel, close: () => tunnel.close() }
}

let resolving = false
function resolveLocalhostNames(): void {
  if (resolving) return
  resolving = true
  setGlobalDispatcher(new UndiciAgent({
    connect: {
      lookup(hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) {
        if (!hostname.endsWith('.localhost')) return dnsLookup(hostname, options as never, callback as never)
        if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }])
        else callback(null, '127.0.0.1', 4)
      },
    } as never,
  }))
}

/** An upstream that echoes what it received as JSON. */
export async function startEchoUpstream(tag = 'echo'): Promise<{ url: string; close(): Promise<void>; server: Server; hits: number }> {
  const state = { hits: 0 }
  const server = createServer((req, res) => {
    state.hits++
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ tag, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    get hits() {
      return state.hits
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}
