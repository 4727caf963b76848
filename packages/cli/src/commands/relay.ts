import { readFileSync } from 'node:fs'
import { Flags } from '@oclif/core'
import { GwCommand } from '../cli/gw-command.js'
import { randomBytes } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import { startRelay, ClusterState, loadTls, serveWorkersMetrics, parseTokensFile, parseTcpPorts, parseSize, RELAY_DEFAULTS, DEFAULT_CACHE_DIR_BYTES, defaultStateDir, loadRelayConfig, startConfigReloader, type RelayClusterOptions, type RelayOptions } from '@gw/relay'
import { CliError } from '../errors.js'
import { AGENT_PATH } from '@gw/protocol'
import { createLogger, type LogFormat, type LogLevel } from '../output/logger.js'
import { toCliError } from '../output/cli-error.js'
import { withConfigFile } from '../cli/relay-config.js'
import { availableParallelism } from 'node:os'
import { isRelayWorker, leaveWorker, reportReady, superviseWorkers, workerId } from '../cli/relay-workers.js'

export default class Relay extends GwCommand {
  static override summary = 'Run a relay: the public server that agents connect to'
  static override description = `Serves *.DOMAIN over HTTP and HTTPS and routes each request by its Host to the
agent that holds the name. Agents connect to ${AGENT_PATH} on the same ports.

On an address other than loopback the relay needs authtokens (--authtoken,
GW_RELAY_AUTHTOKENS, or --authtokens-file), unless --allow-anonymous is given.`

  static override examples = [
    '<%= config.bin %> relay --domain tunnel.example.com --authtoken "$(openssl rand -hex 24)"',
    '<%= config.bin %> relay --domain localhost --host 127.0.0.1 --http-port 8080 --https-port 8443',
  ]

  static override flags = {
    domain: Flags.string({ description: 'serve *.DOMAIN, e.g. tunnel.example.com (required, here or in --config)', env: 'GW_RELAY_DOMAIN' }),
    config: Flags.string({ description: 'relay config file (YAML): settings, tokens with reserved names, per-token limits; reloaded on SIGHUP and when it changes', env: 'GW_RELAY_CONFIG' }),
    host: Flags.string({ description: 'address to listen on', default: RELAY_DEFAULTS.host }),
    'http-port': Flags.integer({ description: 'HTTP port (0: any free port, -1: off)', default: RELAY_DEFAULTS.httpPort, min: -1, max: 65535 }),
    'https-port': Flags.integer({ description: 'HTTPS port (0: any free port, -1: off)', default: RELAY_DEFAULTS.httpsPort, min: -1, max: 65535 }),
    'tls-cert': Flags.string({ description: 'PEM certificate (chain) for *.DOMAIN; generated when omitted', dependsOn: ['tls-key'] }),
    'tls-key': Flags.string({ description: 'PEM private key for --tls-cert', dependsOn: ['tls-cert'] }),
    authtoken: Flags.string({ description: 'an authtoken agents may use (repeatable)', multiple: true }),
    'authtokens-file': Flags.string({ description: 'file with one token per line, or sha256:<hex> for a hashed one' }),
    'allow-anonymous': Flags.boolean({ description: 'accept agents without a token on a public address', default: false }),
    'state-dir': Flags.string({ description: `where certificates and name owners are kept (default ${defaultStateDir()})`, env: 'GW_RELAY_STATE_DIR' }),
    'max-header-size': Flags.integer({ description: 'largest request head in bytes (then 431)', default: RELAY_DEFAULTS.maxHeaderSize, min: 1024 }),
    'headers-timeout': Flags.integer({ description: 'seconds for a client to send its request head (then 408)', default: RELAY_DEFAULTS.headersTimeout / 1000, min: 1 }),
    'idle-timeout': Flags.integer({ description: 'seconds a connection may stay silent', default: RELAY_DEFAULTS.idleTimeout / 1000, min: 1 }),
    'heartbeat-timeout': Flags.integer({ description: 'seconds without a heartbeat answer before an agent counts as gone', default: RELAY_DEFAULTS.heartbeatTimeout / 1000, min: 1 }),
    'tcp-ports': Flags.string({ description: 'public ports for tcp endpoints (gw tcp): a range such as 20000-20100, one port, or any (any free port; for a private machine). Off when omitted', env: 'GW_RELAY_TCP_PORTS' }),
    'tcp-max-connections': Flags.integer({ description: 'connections one tcp or tls endpoint may have open at once (then new ones are reset)', default: RELAY_DEFAULTS.tcpMaxConnections, min: 1 }),
    'public-http-port': Flags.integer({ description: 'HTTP port to print in public URLs, when a proxy maps it' }),
    'public-https-port': Flags.integer({ description: 'HTTPS port to print in public URLs, when a proxy maps it' }),
    'metrics-addr': Flags.string({ description: 'serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9464', env: 'GW_RELAY_METRICS_ADDR' }),
    'access-log': Flags.string({ description: 'write one JSON line per request to this file (- for stdout)' }),
    'relay-cache': Flags.string({ description: 'keep a shared HTTP cache (RFC 9111) of this size, e.g. 256MB, for the endpoints that ask for it (gw http --relay-cache)' }),
    'relay-cache-max-entry': Flags.string({ description: 'largest response the cache stores (default: the smaller of an eighth of --relay-cache and 16MiB)', dependsOn: ['relay-cache'] }),
    'relay-cache-dir': Flags.string({ description: 'also keep the cache\'s stored responses in files under this directory, behind the memory tier; they survive a restart', dependsOn: ['relay-cache'] }),
    'relay-cache-dir-size': Flags.string({ description: 'bytes of files in --relay-cache-dir at most, least recently used removed first (default 1GiB; shared among --workers)', dependsOn: ['relay-cache-dir'] }),
    'custom-domains': Flags.boolean({ description: 'serve hosts outside DOMAIN that agents ask for (gw http --url app.customer.com) once DNS points them here: a CNAME to DOMAIN, or a TXT token', default: false }),
    'dns-server': Flags.string({ description: 'DNS server (IP[:port]) to check custom domains with (default: the system resolver)', dependsOn: ['custom-domains'] }),
    'log-format': Flags.string({ description: 'log line format', options: ['term', 'logfmt', 'json'], default: 'term' }),
    'drain-timeout': Flags.integer({ description: 'on SIGTERM or Ctrl-C, seconds the requests in flight get to finish (a second signal stops at once)', default: 30, min: 0 }),
    'acme-email': Flags.string({ description: 'get certificates from an ACME CA (Let\'s Encrypt by default) on demand, with this account contact; agrees to the CA\'s terms', env: 'GW_RELAY_ACME_EMAIL' }),
    'acme-directory': Flags.string({ description: 'ACME directory URL (default Let\'s Encrypt production)', dependsOn: ['acme-email'] }),
    'acme-ca-file': Flags.string({ description: 'PEM of a CA to trust for the ACME directory\'s HTTPS (a private ACME CA)', dependsOn: ['acme-email'] }),
    'acme-challenge': Flags.string({ description: 'challenge for single names, in order of preference (repeatable)', options: ['http-01', 'tls-alpn-01'], multiple: true, dependsOn: ['acme-email'] }),
    redis: Flags.string({ description: 'run as one relay of a cluster sharing names and presence in Redis: redis://10.0.0.2:6379, rediss://… (TLS), or redis-sentinel://10.0.0.2:26379,10.0.0.3:26379#mymaster (docs/scaling.md)', env: 'GW_RELAY_REDIS' }),
    'redis-ca-file': Flags.string({ description: 'PEM of the CA that signed the certificate of a rediss:// Redis (default: the system\'s CAs)', env: 'GW_RELAY_REDIS_CA_FILE', dependsOn: ['redis'] }),
    'cluster-secret-file': Flags.string({ description: 'file whose first line is the secret every relay of the cluster shares (or GW_RELAY_CLUSTER_SECRET); needed with --redis', dependsOn: ['redis'] }),
    'cluster-addr': Flags.string({ description: 'host:port for the relay-to-relay link (default: --host, any free port)', dependsOn: ['redis'] }),
    'cluster-advertise': Flags.string({ description: 'host:port other relays reach the relay-to-relay link at (default: --cluster-addr, or this machine\'s first IPv4)', dependsOn: ['redis'] }),
    'advertise-url': Flags.string({ description: 'URL agents may reconnect to this relay at, given to agents of the cluster (repeatable; default https://DOMAIN)', multiple: true, dependsOn: ['redis'] }),
    workers: Flags.integer({ description: 'relay processes behind one listener (node:cluster), sharing names and presence through the primary process, or through --redis when given (0: one per core)', default: 0, min: 0, max: 256, env: 'GW_RELAY_WORKERS' }),
    'acme-dns-hook': Flags.string({ description: 'command that sets and clears DNS-01 TXT records (called with set|clear, the record name, the value); gets a wildcard certificate', dependsOn: ['acme-email'] }),
  }

  async run(): Promise<void> {
    const { flags, metadata } = await this.parse(Relay)
    const base = createLogger({ format: flags['log-format'] as LogFormat, level: 'info', component: 'relay' })
    // A worker's lines say which worker wrote them.
    const worker = workerId()
    const logger = worker === undefined ? base : { ...base, log: (level: LogLevel, msg: string, fields?: Record<string, unknown>) => base.log(level, msg, { ...fields, worker }) }
    try {
      const file = flags.config ? loadRelayConfig(flags.config) : undefined
      const perProcessLimits = file !== undefined && [file.limits, ...file.tokens.map((t) => t.limits)].some((l) => l.tunnels !== undefined || l.streams !== undefined || l.bandwidth !== undefined)
      // The cache is per process, and only the process holding an agent's link looks in it:
      // with N workers, N-1 of every N requests would pass it by.
      const cached = flags['relay-cache'] !== undefined || file?.settings.relayCache !== undefined
      const single = perProcessLimits ? 'limits.tunnels, streams and bandwidth (counted by each process) in --config'
        : cached ? '--relay-cache (each process keeps its own, used only for the agents it holds)' : undefined
      const workers = workerCount(flags.workers, metadata.flags.workers?.setFromDefault === true, single, logger)
      if (workers > 1 && !isRelayWorker()) {
        await generatedCertificateFirst(flags, metadata.flags['https-port']?.setFromDefault === true, file?.settings)
        const log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void => logger.log(level, msg, fields)
        // /metrics: the primary's, every worker's figures summed.
        const metricsAddr = flags['metrics-addr'] ?? file?.settings.metricsAddr
        const metrics = metricsAddr !== undefined ? await serveWorkersMetrics(metricsAddr) : undefined
        if (metrics) logger.log('info', 'serving the workers\' metrics, summed', { metrics: metrics.url })
        const env = {
          ...await workerPorts(flags, (flag) => metadata.flags[flag]?.setFromDefault === true, file?.settings),
          ...(metrics ? { [WORKER_METRICS_URL_ENV]: metrics.url } : {}),
        }
        try {
          if (flags.redis) {
            clusterOptions(flags)
            logger.log('info', 'starting relay workers', { workers, shared_state: 'redis' })
            process.exitCode = await superviseWorkers(workers, log, { env })
            return
          }
          // No Redis: the primary keeps the shared state, names.json in the state directory as a lone relay does.
          const stateDir = flags['state-dir'] ?? file?.settings.stateDir ?? defaultStateDir()
          const state = new ClusterState({ stateDir })
          logger.log('info', 'starting relay workers', { workers, shared_state: 'primary', state_dir: stateDir })
          process.exitCode = await superviseWorkers(workers, log, { state, env: { ...env, [WORKER_SECRET_ENV]: randomBytes(32).toString('hex') } })
          return
        } finally {
          await metrics?.close()
        }
      }
      const envTokens = (process.env.GW_RELAY_AUTHTOKENS ?? '').split(/[\s,]+/).filter(Boolean)
      // Read, then out of the environment: commands the relay runs (--acme-dns-hook) do not inherit it.
      const workerSecret = isRelayWorker() ? process.env[WORKER_SECRET_ENV] : undefined
      delete process.env[WORKER_SECRET_ENV]
      const size = (flag: 'relay-cache' | 'relay-cache-max-entry' | 'relay-cache-dir-size'): number | undefined => {
        const value = flags[flag]
        if (value === undefined) return undefined
        const bytes = parseSize(value)
        if (bytes === undefined) throw new CliError('GW_ERR_INVALID_FLAG', `--${flag} ${JSON.stringify(value)} is not a size; give bytes, e.g. 268435456, 256MB or 1GiB`)
        return bytes
      }
      const cacheBytes = size('relay-cache')
      const cacheEntryBytes = size('relay-cache-max-entry')
      const dirBytes = size('relay-cache-dir-size')
      const cacheDir = flags['relay-cache-dir'] !== undefined ? { dir: flags['relay-cache-dir'], ...(dirBytes !== undefined ? { dirMaxBytes: dirBytes } : {}) } : {}
      const options = withConfigFile({
        domain: flags.domain,
        host: flags.host,
        httpPort: flags['http-port'] === -1 ? false : flags['http-port'],
        httpsPort: flags['https-port'] === -1 ? false : flags['https-port'],
        ...(flags['tls-cert'] ? { tlsCert: flags['tls-cert'] } : {}),
        ...(flags['tls-key'] ? { tlsKey: flags['tls-key'] } : {}),
        authtokens: [...(flags.authtoken ?? []), ...envTokens],
        tokenDigests: flags['authtokens-file'] ? parseTokensFile(flags['authtokens-file']) : [],
        allowAnonymous: flags['allow-anonymous'],
        ...(flags['state-dir'] ? { stateDir: flags['state-dir'] } : {}),
        maxHeaderSize: flags['max-header-size'],
        headersTimeout: flags['headers-timeout'] * 1000,
        idleTimeout: flags['idle-timeout'] * 1000,
        heartbeatTimeout: flags['heartbeat-timeout'] * 1000,
        ...(flags['tcp-ports'] !== undefined ? { tcpPorts: parseTcpPorts(flags['tcp-ports']) } : {}),
        tcpMaxConnections: flags['tcp-max-connections'],
        ...(flags['public-http-port'] ? { publicHttpPort: flags['public-http-port'] } : {}),
        ...(flags['public-https-port'] ? { publicHttpsPort: flags['public-https-port'] } : {}),
        ...(flags['metrics-addr'] !== undefined ? { metricsAddr: flags['metrics-addr'] } : {}),
        ...(flags['access-log'] ? { accessLog: flags['access-log'] } : {}),
        ...(cacheBytes !== undefined ? { relayCache: { maxBytes: cacheBytes, ...(cacheEntryBytes !== undefined ? { maxEntryBytes: cacheEntryBytes } : {}), ...cacheDir } } : {}),
        ...(flags['acme-email'] ? {
          acme: {
            email: flags['acme-email'],
            ...(flags['acme-directory'] ? { directoryUrl: flags['acme-directory'] } : {}),
            ...(flags['acme-ca-file'] ? { directoryCa: readFileSync(flags['acme-ca-file'], 'utf8') } : {}),
            ...(flags['acme-challenge'] ? { challenges: flags['acme-challenge'] as Array<'http-01' | 'tls-alpn-01'> } : {}),
            ...(flags['acme-dns-hook'] ? { dnsHook: flags['acme-dns-hook'] } : {}),
          },
        } : {}),
        ...(flags.redis ? { cluster: clusterOptions(flags) } : {}),
        // A worker of --workers without Redis: a cluster whose state is the primary's, its
        // relay-to-relay link on loopback (the workers are all on this machine).
        ...(!flags.redis && workerSecret !== undefined ? { cluster: { secret: workerSecret, peerListen: '127.0.0.1:0' } } : {}),
        ...(flags['custom-domains'] ? { customDomains: true } : {}),
        ...(flags['dns-server'] ? { dnsServer: flags['dns-server'] } : {}),
        log: (level, msg, fields) => logger.log(level, msg, fields),
        ...(isRelayWorker() ? { metricsViaPrimary: true } : {}),
      }, file, (flag) => metadata.flags[flag]?.setFromDefault === true)
      // Each worker keeps a part of the cache directory of its own (cache/disk.ts): the size is theirs together.
      // A size below the minimum is left whole, so the relay's refusal names the size given;
      // each worker's part is at least the minimum.
      const dirTotal = options.relayCache?.dirMaxBytes ?? DEFAULT_CACHE_DIR_BYTES
      if (options.relayCache?.dir !== undefined && workers > 1 && dirTotal >= MIN_CACHE_DIR_BYTES) {
        options.relayCache = { ...options.relayCache, dirMaxBytes: Math.max(MIN_CACHE_DIR_BYTES, Math.floor(dirTotal / workers)) }
      }
      // Port 0 (any free port): the primary chose one for all the workers (see workerPorts).
      if (worker !== undefined) {
        for (const [key, env] of [['httpPort', WORKER_HTTP_PORT_ENV], ['httpsPort', WORKER_HTTPS_PORT_ENV]] as const) {
          const chosen = Number(process.env[env])
          if (options[key] === 0 && chosen > 0) options[key] = chosen
        }
      }
      const relay = await startRelay(options)
      const reloader = file
        ? startConfigReloader(relay, flags.config!, file, (level, msg, fields) => logger.log(level, msg, fields), {
          ...(flags['tls-cert'] ? { tlsCert: flags['tls-cert'] } : {}),
          ...(flags['tls-key'] ? { tlsKey: flags['tls-key'] } : {}),
        })
        : undefined
      // SIGHUP: reload the config file, and open the access log again (logrotate).
      // Without --config, SIGHUP still loads --tls-cert/--tls-key again (a renewed certificate).
      process.on('SIGHUP', () => {
        relay.reopenLogs()
        if (reloader) return void reloader.reload('SIGHUP')
        const tlsCert = flags['tls-cert']
        const tlsKey = flags['tls-key']
        if (!tlsCert || !tlsKey) return logger.log('info', 'SIGHUP: access log reopened; there is no --config to reload')
        relay.reload({ tlsCert, tlsKey }).then(
          () => logger.log('info', 'SIGHUP: certificate reloaded, access log reopened', { cert: tlsCert }),
          (err: Error) => logger.log('error', 'SIGHUP: certificate reload refused; the running certificate stays', { cert: tlsCert, error: err.message }),
        )
      })
      logger.log('info', 'relay started', {
        domain: relay.domain,
        host: relay.host,
        http_port: relay.httpPort,
        https_port: relay.httpsPort,
        agent_path: AGENT_PATH,
        ca: relay.caCertPath,
        ...(relay.metricsUrl ? { metrics: relay.metricsUrl } : {}),
        // A worker's figures are served by the primary, summed.
        ...(worker !== undefined && process.env[WORKER_METRICS_URL_ENV] ? { metrics: process.env[WORKER_METRICS_URL_ENV] } : {}),
        ...(relay.clusterId ? { cluster: relay.clusterId, peer: relay.clusterPeer } : {}),
        ...(worker !== undefined ? { pid: process.pid } : {}),
        ...(flags['tcp-ports'] !== undefined ? { tcp_ports: flags['tcp-ports'] } : {}),
        ...(relay.customDomains ? { custom_domains: true } : {}),
      })
      reportReady()
      if (relay.caCertPath && !flags['tls-cert']) {
        logger.log('info', 'using a generated certificate; agents and clients trust it with this file', { ca: relay.caCertPath })
      }
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      // Drain: no new connections, GoAway to the agents, the requests in flight finish.
      // A second signal cuts them at once.
      // A worker may get one signal twice: from the terminal (Ctrl-C reaches the whole process
      // group) and passed on by the primary. Only a later one cuts the drain.
      const firstAt = Date.now()
      const now = (signal: NodeJS.Signals): void => {
        if (worker !== undefined && Date.now() - firstAt < REPEAT_SIGNAL_MS) {
          process.once(signal, now)
          return
        }
        logger.log('warn', 'relay stopping now: a second signal cut the drain')
        void relay.close()
      }
      process.once('SIGINT', now)
      process.once('SIGTERM', now)
      // --drain-timeout on the command line wins; else drain_timeout of the config in force (a reload changes it).
      const fileDrain = reloader?.current().drainTimeout
      const drainTimeout = metadata.flags['drain-timeout']?.setFromDefault === true && fileDrain !== undefined ? fileDrain : flags['drain-timeout']
      reloader?.close()
      logger.log('info', 'relay draining', { timeout_s: drainTimeout, agents: relay.agentCount, in_flight: relay.openStreams() })
      const finished = await relay.drain(drainTimeout * 1000)
      logger.log(finished ? 'info' : 'warn', finished ? 'relay stopped: every request finished' : 'relay stopped: the drain timeout cut the requests still open', {})
      leaveWorker()
    } catch (err) {
      throw toCliError(err)
    }
  }
}

/**
 * Before the workers start: the generated CA and certificate (tls.ts) made once, here, so
 * every worker loads the same files instead of each making its own at once.
 */
async function generatedCertificateFirst(
  flags: { domain?: string | undefined; 'https-port': number; 'tls-cert'?: string | undefined; 'state-dir'?: string | undefined },
  httpsPortFromDefault: boolean,
  settings: Partial<RelayOptions> | undefined,
): Promise<void> {
  const domain = flags.domain ?? settings?.domain
  const httpsOff = httpsPortFromDefault ? settings?.httpsPort === false : flags['https-port'] === -1
  if (!domain || httpsOff || flags['tls-cert'] || settings?.tlsCert) return
  await loadTls({ stateDir: flags['state-dir'] ?? settings?.stateDir ?? defaultStateDir(), domain })
}

const MIN_CACHE_DIR_BYTES = 1024 * 1024
const WORKER_HTTP_PORT_ENV = 'GW_RELAY_WORKER_HTTP_PORT'
const WORKER_HTTPS_PORT_ENV = 'GW_RELAY_WORKER_HTTPS_PORT'
const WORKER_METRICS_URL_ENV = 'GW_RELAY_WORKER_METRICS_URL'

/**
 * Port 0 for HTTP or HTTPS: the primary picks a free port for each, once, and gives it to
 * every worker. node:cluster shares a listening socket between workers by address and
 * port, so two listens on port 0 in one worker would get one socket for HTTP and HTTPS.
 */
async function workerPorts(flags: { 'http-port': number; 'https-port': number; host: string }, fromDefault: (flag: 'http-port' | 'https-port' | 'host') => boolean, settings: Partial<RelayOptions> | undefined): Promise<Record<string, string>> {
  const env: Record<string, string> = {}
  const host = settings?.host !== undefined && fromDefault('host') ? settings.host : flags.host
  for (const [flag, key, name] of [['http-port', 'httpPort', WORKER_HTTP_PORT_ENV], ['https-port', 'httpsPort', WORKER_HTTPS_PORT_ENV]] as const) {
    const port = fromDefault(flag) && settings?.[key] !== undefined ? settings[key] : flags[flag]
    if (port === 0) env[name] = String(await freePortOn(host))
  }
  return env
}

function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** In a worker, a signal this soon after the first is the same one, twice (see the drain). */
const REPEAT_SIGNAL_MS = 500

/** The primary of --workers gives its workers the relay-to-relay link's secret here (not a flag: each start makes a new one). */
const WORKER_SECRET_ENV = 'GW_RELAY_WORKER_SECRET'

/**
 * --workers: N, or 0 (the default) one per core. Left at its default it is 1 with the
 * features whose state is one process's (`single` names it): token limits that each
 * process counts (tunnels, streams, bandwidth: N workers would allow N times as much),
 * and the relay cache, which only the process holding an agent's link uses.
 * Custom domains and ACME are the workers' together (their owners, challenges and
 * certificates are in the primary's state, or in Redis).
 */
function workerCount(workers: number, fromDefault: boolean, single: string | undefined, logger: { log(level: 'info', msg: string, fields?: Record<string, unknown>): void }): number {
  if (workers > 0) return workers
  if (fromDefault && single) {
    if (!isRelayWorker()) logger.log('info', `one relay process, not one per core: ${single} is one process's; give --workers N for N anyway`)
    return 1
  }
  return availableParallelism()
}

function clusterOptions(flags: { redis?: string; 'redis-ca-file'?: string; 'cluster-secret-file'?: string; 'cluster-addr'?: string; 'cluster-advertise'?: string; 'advertise-url'?: string[] }): RelayClusterOptions {
  let redisCa: string | undefined
  if (flags['redis-ca-file']) {
    try {
      redisCa = readFileSync(flags['redis-ca-file'], 'utf8')
    } catch (err) {
      throw new CliError('GW_ERR_INVALID_FLAG', `--redis-ca-file ${flags['redis-ca-file']} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    if (!redisCa.includes('-----BEGIN CERTIFICATE-----')) {
      throw new CliError('GW_ERR_INVALID_FLAG', `--redis-ca-file ${flags['redis-ca-file']} holds no PEM certificate; give the CA certificate (-----BEGIN CERTIFICATE-----) that signed Redis's`)
    }
  }
  let secret = process.env.GW_RELAY_CLUSTER_SECRET ?? ''
  if (flags['cluster-secret-file']) {
    try {
      secret = readFileSync(flags['cluster-secret-file'], 'utf8').split('\n')[0]!.trim()
    } catch (err) {
      throw new CliError('GW_ERR_INVALID_FLAG', `--cluster-secret-file ${flags['cluster-secret-file']} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  if (!secret) {
    throw new CliError('GW_ERR_INVALID_FLAG', '--redis needs the cluster secret every relay shares: give --cluster-secret-file <file> or GW_RELAY_CLUSTER_SECRET (make one with `openssl rand -hex 32`)')
  }
  return {
    redis: flags.redis!,
    ...(redisCa !== undefined ? { redisCa } : {}),
    secret,
    ...(flags['cluster-addr'] ? { peerListen: flags['cluster-addr'] } : {}),
    ...(flags['cluster-advertise'] ? { peerAdvertise: flags['cluster-advertise'] } : {}),
    ...(flags['advertise-url'] ? { agentUrls: flags['advertise-url'] } : {}),
  }
}
