/**
 * What `gw http` and `gw start` share: reading the config, choosing the relay (or
 * starting the embedded one), starting the agent, the agent API, and the output, then
 * staying up until Ctrl-C or a fatal error.
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { Flags, type Command } from '@oclif/core'
import chalk from 'chalk'
import { type CodedError, isLoopbackHost } from '@gw/protocol'
import { startRelay, type Relay } from '@gw/relay'
import { startAgent, type Agent, type AgentEndpointOptions } from './agent/agent.js'
import { AgentEvents, allEndpoints, type Exchange } from './agent/events.js'
import { agentId, configPath, loadConfig, type AgentConfig } from './config/config-file.js'
import { compileEndpointPolicy } from './endpoint-policy.js'
import { loadSecretStore } from './config/secrets-file.js'
import type { EndpointSpec } from './config/endpoint-spec.js'
import { createTunnelSet } from './tunnel-set.js'
import { createLogger, type LogFormat, type LogLevel, type Logger } from './output/logger.js'
import { openLogDestination } from './output/log-destination.js'
import { startInspection, type Inspection } from './inspection.js'
import { parseApiAddr } from './api/listen.js'
import { CliError } from './errors.js'

export const sharedTunnelFlags = {
  relay: Flags.string({ description: 'relay URL, e.g. https://tunnel.example.com', env: 'GW_RELAY' }),
  authtoken: Flags.string({ description: 'authtoken for the relay', env: 'GW_AUTHTOKEN' }),
  'relay-ca': Flags.string({ description: 'PEM file to trust for a relay with a self-signed certificate' }),
  config: Flags.string({ description: 'config file (default: the platform config dir; also GW_CONFIG)' }),
  'upstream-tls-verify': Flags.boolean({ description: 'verify the upstream\'s TLS certificate', default: false }),
  'upstream-timeout': Flags.integer({ description: 'seconds to wait for the upstream\'s response headers before 504', default: 60, min: 1 }),
  'heartbeat-timeout': Flags.integer({ description: 'seconds without a heartbeat answer before the relay counts as gone', default: 15, min: 1 }),
  log: Flags.string({ description: 'where log lines go: stdout, stderr, false or a file path (default stdout, none while the terminal UI runs)' }),
  'log-format': Flags.string({ description: 'log line format', options: ['term', 'logfmt', 'json'], default: 'term' }),
  'log-level': Flags.string({ description: 'lowest level to log', options: ['debug', 'info', 'warn', 'error'], default: 'info' }),
  'inspect-addr': Flags.string({ description: 'agent API and web inspector address (default 127.0.0.1:4040, or the next free port)' }),
  inspect: Flags.boolean({ description: 'capture requests for inspection and replay', default: true, allowNo: true }),
  'inspect-body-limit': Flags.integer({ description: 'bytes of each body to capture', default: 64 * 1024, min: 0 }),
  'inspect-db-size': Flags.integer({ description: 'bytes of captured traffic to keep (oldest dropped first)', default: 50 * 1024 * 1024, min: 0 }),
  tui: Flags.boolean({ description: 'show the terminal UI (default when stdout is a terminal)', allowNo: true }),
}

export interface TunnelFlags {
  relay?: string
  authtoken?: string
  'relay-ca'?: string
  config?: string
  'upstream-tls-verify': boolean
  'upstream-timeout': number
  'heartbeat-timeout': number
  log?: string
  'log-format': string
  'log-level': string
  'inspect-addr'?: string
  inspect: boolean
  'inspect-body-limit': number
  'inspect-db-size': number
  tui?: boolean
}

/** On Ctrl-C or SIGTERM, time the requests in flight get to finish, ms. */
export const AGENT_DRAIN_MS = 10_000

/** What `gw http` and `gw start` hand over: an endpoint and where its policy comes from. */
export type TunnelSpec = EndpointSpec

export async function runTunnels(command: Command, flags: TunnelFlags, specs: TunnelSpec[], loaded?: { file: string; config: AgentConfig }): Promise<void> {
  const file = loaded?.file ?? configPath(flags.config)
  const config = loaded?.config ?? loadConfig(file)
  const events = new AgentEvents()
  // A policy that does not validate stops gw here, before anything connects.
  const compiled = ({ policyInput, ...spec }: TunnelSpec): AgentEndpointOptions => {
    const policy = policyInput
      ? compileEndpointPolicy({
        ...policyInput, events, endpoint: spec.name ?? 'command_line', secrets: loadSecretStore(file),
        ...(spec.proto && spec.proto !== 'http' ? { kind: spec.proto } : {}),
        ...(config.upstreams ? { upstreams: config.upstreams } : {}),
      })
      : undefined
    if (spec.relayCache && policy?.hasRequestRules) {
      void policy.close()
      const where = spec.name === undefined || spec.name === 'command_line' ? '--relay-cache' : `endpoint "${spec.name}": relay_cache`
      throw new CliError(spec.name === undefined || spec.name === 'command_line' ? 'GW_ERR_INVALID_FLAG' : 'GW_ERR_CONFIG',
        `${where} with on_http_request rules: a response the relay answers from its cache never reaches the agent, so those rules (auth, IP rules, rate limits…) would not run for it; drop the cache, or the request rules`)
    }
    return policy ? { ...spec, policy } : spec
  }
  const endpoints: AgentEndpointOptions[] = specs.map(compiled)
  const format = flags['log-format'] as LogFormat
  const useTui = (flags.tui ?? process.stdout.isTTY === true) && format === 'term'
  const destination = openLogDestination(flags.log ?? config.agent?.log)
  const logger = destination.off
    ? createLogger({ format, level: 'error', write: () => {} })
    : createLogger({ format, level: flags['log-level'] as LogLevel, ...(destination.write ? { write: destination.write } : {}) })
  const quietLogs = destination.off || (useTui && destination.terminal)

  const relayUrl = flags.relay ?? config.agent?.connect_url
  const relayCaPath = flags['relay-ca'] ?? config.agent?.relay_ca
  let relayCa: string | undefined
  if (relayCaPath) {
    try {
      relayCa = readFileSync(relayCaPath, 'utf8')
    } catch (err) {
      throw new CliError('GW_ERR_INVALID_FLAG', `--relay-ca ${relayCaPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; give the path of the relay's ca.pem`)
    }
  }

  let embedded: Relay | undefined
  let relay = relayUrl
  if (!relay) {
    embedded = await startRelay({
      host: '127.0.0.1',
      httpPort: 0,
      httpsPort: 0,
      domain: 'localhost',
      stateDir: join(dirname(file), 'local-relay'),
      // gw tcp with no relay: any free port on loopback, kept by this agent across reconnects.
      tcpPorts: 'any',
      // Each tunnel also gets http://127.0.0.1:<port>: Node's fetch, Python and wget do not resolve *.localhost everywhere.
      loopbackUrls: true,
    })
    relay = embedded.httpUrl!
    relayCa = embedded.caCertPem
  }

  wireLogs(events, logger, quietLogs)

  const inspectAddr = flags['inspect-addr'] ?? (config.agent?.web_addr === false ? false : config.agent?.web_addr)
  const agentOptions = {
    // Exchange records feed the capture, the agent API's metrics, the TUI and the request log lines.
    record: flags.inspect || useTui || logger.enabled('info') || inspectAddr !== false,
    relay,
    ...(flags.authtoken ?? config.agent?.authtoken ? { authtoken: flags.authtoken ?? config.agent?.authtoken } : {}),
    ...(relayCa ? { relayCa } : {}),
    agentId: agentId(file),
    events,
    embedded: embedded !== undefined,
    heartbeatTimeout: flags['heartbeat-timeout'] * 1000,
    // Ctrl-C or SIGTERM lets the requests in flight finish (a pooled agent restarting
    // fails none); a second signal ends the process at once.
    drainTimeout: AGENT_DRAIN_MS,
    responseTimeout: flags['upstream-timeout'] * 1000,
    upstreamTlsVerify: flags['upstream-tls-verify'],
  }
  let agent: Agent
  try {
    agent = await startAgent({ ...agentOptions, endpoints })
  } catch (err) {
    await embedded?.close()
    for (const e of endpoints) await e.policy?.close()
    throw err
  }

  // Tunnels started later through the agent API, each on its own connection.
  const tunnels = createTunnelSet({
    main: agent,
    mainSpecs: specs,
    connect: async (spec) => {
      const endpoint = compiled(spec)
      try {
        return await startAgent({ ...agentOptions, endpoints: [endpoint] })
      } catch (err) {
        await endpoint.policy?.close()
        throw err
      }
    },
    log: (level, msg, fields) => events.emit('log', { level, msg, fields }),
  })
  // The agent API shows every captured request, headers and bodies included, and can
  // replay them: on an address other machines reach, anyone there can.
  if (typeof inspectAddr === 'string') {
    const { host } = parseApiAddr(inspectAddr)
    if (!isLoopbackHost(host)) {
      logger.log('warn', `the agent API listens on ${host}, off loopback: anyone who can reach it sees captured requests and can replay them; use --inspect-addr 127.0.0.1:4040 unless that is what you want`, { addr: inspectAddr })
    }
  }

  let inspection: Inspection | undefined
  try {
    inspection = await startInspection({
      agent: tunnels,
      tunnels,
      addr: inspectAddr,
      capture: { enabled: flags.inspect, bodyLimit: flags['inspect-body-limit'], dbSize: flags['inspect-db-size'] },
      tui: useTui,
    })
  } catch (err) {
    await agent.close()
    await embedded?.close()
    throw err
  }

  if (format === 'term' && !useTui) {
    // Log lines are batched per event-loop turn; the banner must not overtake them.
    logger.flush()
    printBanner(command, agent, embedded, inspection)
  }
  // Machines read the start from the log lines: in json and logfmt, and in a --log file.
  if (format !== 'term' || !destination.terminal) {
    for (const tunnel of allEndpoints(agent.status())) {
      for (const url of tunnel.publicUrls) logger.log('info', 'started tunnel', { name: tunnel.name, url, addr: tunnel.upstream })
    }
    if (embedded) logger.log('info', 'local relay: reachable from this machine only; pass --relay <url> to use a real one', { relay: embedded.httpUrl, ca: embedded.caCertPath })
    if (inspection?.apiUrl) logger.log('info', 'agent API', { url: inspection.apiUrl })
  }

  const stop = async (): Promise<void> => {
    // The agents first: they drain, and their last requests still reach the inspector.
    await tunnels.close()
    await agent.close()
    await inspection?.close()
    await embedded?.close()
    destination.close()
  }
  const fatal = await new Promise<CodedError | undefined>((resolve) => {
    const onSignal = (): void => resolve(undefined)
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    void agent.done.then(resolve)
    void inspection?.exited?.then(() => resolve(undefined))
  })
  await stop()
  if (fatal) throw fatal
}

function printBanner(command: Command, agent: Agent, embedded: Relay | undefined, inspection: Inspection | undefined): void {
  const lines: string[] = ['']
  const status = agent.status()
  lines.push(`${chalk.bold('gw')} ${status.version}   ${chalk.green('online')}`)
  if (embedded) {
    lines.push(chalk.yellow(`Relay       local relay on ${embedded.httpUrl} (this machine only)`))
    lines.push(chalk.gray('            to share publicly, run a relay (gw relay) and pass --relay <url>'))
    lines.push(chalk.gray(`            https uses a local CA: ${embedded.caCertPath}`))
  } else {
    lines.push(`Relay       ${status.relay}`)
  }
  if (inspection?.apiUrl) lines.push(`Agent API   ${inspection.apiUrl}`)
  for (const tunnel of allEndpoints(status)) {
    for (const url of tunnel.publicUrls) lines.push(`Forwarding  ${chalk.cyan(url)} → ${tunnel.upstream}`)
  }
  lines.push('')
  command.log(lines.join('\n'))
}

function wireLogs(events: AgentEvents, logger: Logger, quiet: boolean): void {
  if (quiet) return
  events.on('log', ({ level, msg, fields }) => logger.log(level, msg, fields))
  if (!logger.enabled('info')) return
  events.on('exchange:end', (x: Exchange) => {
    const ms = x.timing.endAt !== undefined ? Math.round(x.timing.endAt - x.timing.agentReceivedAt) : undefined
    logger.log('info', `${x.request.method} ${x.request.target}`, {
      status: x.response?.status ?? x.verdict?.status,
      duration_ms: ms,
      ...(x.error ? { error: x.error.code } : {}),
      ...(x.replayOf ? { replay_of: x.replayOf } : {}),
    })
  })
}
