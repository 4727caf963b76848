/**
 * Everything that watches the agent's traffic: capture, metrics, the agent API with the
 * web inspector, and the terminal UI. All of it reads the agent's event stream and
 * status; none of it reaches into the tunnel.
 */
import type { Agent } from './agent/agent.js'
import type { TunnelControl } from './api/tunnel-control.js'
import { startAgentApi, type AgentApi } from './api/server.js'
import { createCapture } from './inspect/capture.js'
import { createMetrics } from './inspect/metrics.js'
import { startTui, type Tui } from './tui/render.js'

export interface Inspection {
  /** The agent API's URL, or undefined when it is turned off. */
  apiUrl: string | undefined
  /** Resolves when the user quits the terminal UI. */
  exited: Promise<void> | undefined
  close(): Promise<void>
}

export interface InspectionOptions {
  /** The agent, or the set of agents one gw process runs, seen as one. */
  agent: Pick<Agent, 'events' | 'status' | 'replay'>
  /** Start and stop tunnels through the API; without it those calls answer 405. */
  tunnels?: TunnelControl
  /** `host:port`, or false to turn the agent API off. */
  addr: string | false | undefined
  capture: { enabled: boolean; bodyLimit: number; dbSize: number }
  tui: boolean
}

export async function startInspection(options: InspectionOptions): Promise<Inspection> {
  const { agent } = options
  const capture = createCapture(agent.events, options.capture)
  const metrics = createMetrics(agent.events)
  let api: AgentApi | undefined
  if (options.addr !== false) {
    api = await startAgentApi({
      ...(options.addr ? { addr: options.addr } : {}),
      getStatus: () => agent.status(),
      capture,
      metrics,
      events: agent.events,
      replay: (request, replayOf, tunnel) => agent.replay(request, replayOf, tunnel),
      ...(options.tunnels ? { tunnels: options.tunnels } : {}),
    })
  }
  let tui: Tui | undefined
  if (options.tui) {
    tui = startTui({
      events: agent.events,
      getStatus: () => agent.status(),
      capture,
      metrics,
      replay: (request, replayOf, tunnel) => agent.replay(request, replayOf, tunnel),
      apiUrl: api?.url ?? '',
    })
  }
  return {
    apiUrl: api?.url,
    exited: tui?.waitUntilExit(),
    close: async () => {
      tui?.stop()
      await api?.close()
      metrics.close()
    },
  }
}
