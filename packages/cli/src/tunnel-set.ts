/**
 * The tunnels one `gw http` / `gw start` process serves: those it started with, on the
 * first agent connection, and those started later through the agent API (`POST
 * /api/tunnels`, `POST /api/endpoints`, as ngrok.connect() and pyngrok do). Each API
 * tunnel is its own connection to the same relay with the same agent id, so starting or
 * stopping one never disturbs the others, and the agent itself stays as it is.
 *
 * Everything that watches traffic (capture, metrics, the API, the TUI) sees one agent:
 * one event stream, one status with every tunnel in it, replay routed to the tunnel's
 * own connection.
 */
import { stringify } from 'yaml'
import type { Agent } from './agent/agent.js'
import { allEndpoints, type AgentEvents, type AgentStatus, type TunnelInfo } from './agent/events.js'
import type { ReplayRequest } from './agent/replay.js'
import type { EndpointConfig } from './config/config-file.js'
import { endpointSpec, type EndpointSpec } from './config/endpoint-spec.js'
import { effectivePolicy } from './endpoint-policy.js'
import { InspectError } from './inspect/errors.js'
import type { TunnelControl, TunnelMeta } from './api/tunnel-control.js'

export interface TunnelSet extends TunnelControl {
  readonly events: AgentEvents
  status(): AgentStatus
  replay(request: ReplayRequest, replayOf: string, tunnel: string): Promise<void>
  meta(name: string): TunnelMeta | undefined
  /** Start a tunnel on its own connection; rejects with the reason (a CodedError). */
  start(endpoint: EndpointConfig, where: string): Promise<TunnelInfo>
  /** Stop a tunnel the API started. */
  stop(name: string): Promise<void>
  close(): Promise<void>
}

export interface TunnelSetOptions {
  main: Agent
  /** The specs the main agent started with, for their policy and pooling. */
  mainSpecs: EndpointSpec[]
  /** Connect one more agent for one endpoint; compiles its policy. */
  connect(spec: EndpointSpec): Promise<Agent>
  log(level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void
}

function policyText(spec: EndpointSpec): string {
  if (!spec.policyInput) return ''
  const doc = effectivePolicy(spec.policyInput)
  return Object.keys(doc).length === 0 ? '' : stringify(doc)
}

export function createTunnelSet(options: TunnelSetOptions): TunnelSet {
  const { main } = options
  const metas = new Map<string, TunnelMeta>()
  // The agent lists its public endpoints, then its internal ones (forward-internal's targets).
  const publicSpecs = options.mainSpecs.filter((s) => s.internalHost === undefined)
  const internalSpecs = options.mainSpecs.filter((s) => s.internalHost !== undefined)
  const mainStatus = options.main.status()
  ;[[mainStatus.tunnels, publicSpecs] as const, [mainStatus.internal ?? [], internalSpecs] as const].forEach(([infos, specs]) => infos.forEach((t, i) => {
    const spec = specs[i]
    metas.set(t.name, { trafficPolicy: spec ? policyText(spec) : '', pooling: spec?.pooling === true, dynamic: false })
  }))
  const dynamic = new Map<string, Agent>()
  /** Names being started right now, so two concurrent POSTs cannot both take one. */
  const starting = new Set<string>()

  const taken = (name: string): boolean => starting.has(name) || metas.has(name)

  return {
    events: main.events,
    status() {
      const status = main.status()
      const others = [...dynamic.values()].map((a) => a.status())
      return {
        ...status,
        tunnels: [...status.tunnels, ...others.flatMap((s) => s.tunnels)],
        internal: [...(status.internal ?? []), ...others.flatMap((s) => s.internal ?? [])],
      }
    },
    replay(request, replayOf, tunnel) {
      return (dynamic.get(tunnel) ?? main).replay(request, replayOf, tunnel)
    },
    meta: (name) => metas.get(name),
    async start(endpoint, where) {
      if (taken(endpoint.name)) {
        throw new InspectError('GW_ERR_API_TUNNEL_EXISTS', `a tunnel named ${JSON.stringify(endpoint.name)} is already running; stop it first or pick another name`)
      }
      const spec = endpointSpec(endpoint, where, 'GW_ERR_INVALID_FLAG')
      starting.add(endpoint.name)
      let agent: Agent
      try {
        agent = await options.connect(spec)
      } finally {
        starting.delete(endpoint.name)
      }
      dynamic.set(endpoint.name, agent)
      metas.set(endpoint.name, { trafficPolicy: policyText(spec), pooling: spec.pooling === true, dynamic: true })
      // A fatal refusal later (the name taken over…) ends only this tunnel.
      void agent.done.then((err) => {
        if (dynamic.get(endpoint.name) !== agent) return
        dynamic.delete(endpoint.name)
        metas.delete(endpoint.name)
        if (err) options.log('warn', 'tunnel stopped', { name: endpoint.name, error: err.message, code: err.code })
      })
      // Its one endpoint: public, or internal (`url: https://<name>.internal`).
      const info = allEndpoints(agent.status())[0]!
      for (const url of info.publicUrls) options.log('info', 'started tunnel', { name: info.name, url, addr: info.upstream })
      return info
    },
    async stop(name) {
      const agent = dynamic.get(name)
      if (agent === undefined) {
        if (metas.has(name)) {
          throw new InspectError('GW_ERR_API_TUNNEL_NOT_STOPPABLE', `the tunnel ${JSON.stringify(name)} was started with gw itself, not through the API; stop gw (Ctrl-C) to stop it`)
        }
        throw new InspectError('GW_ERR_TUNNEL_UNKNOWN', `no tunnel is named ${JSON.stringify(name)}`)
      }
      dynamic.delete(name)
      metas.delete(name)
      await agent.close()
      options.log('info', 'stopped tunnel', { name })
    },
    async close() {
      const all = [...dynamic.values()]
      dynamic.clear()
      await Promise.all(all.map((a) => a.close()))
    },
  }
}
