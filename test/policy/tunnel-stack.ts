/**
 * A real relay and agent for policy end-to-end tests: the agent serves one endpoint
 * with the given compiled policy, and requests go to the relay's public port with the
 * tunnel's Host, through yamux, the agent's policy pipeline and a real upstream.
 */
import { rmSync } from 'node:fs'
import { request, type Dispatcher } from 'undici'
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
