/**
 * Relay options, their defaults, and the checks made before anything listens.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { isLoopbackHost, LINK_DEFAULTS } from '@gw/protocol'
import { RelayError } from './errors.js'
import type { TokenEntry, TokenLimits } from './access.js'
import type { AcmeOptions } from './acme/acme-options.js'
import type { TcpPortRange } from './tcp-ports.js'
import type { CacheOptions } from './cache/store.js'
import { parseDnsServer } from './custom-domains.js'

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

export interface RelayOptions {
  /** Address to listen on. Default 0.0.0.0, which needs authtokens. */
  host?: string
  /** HTTP port; 0 picks a free one; false turns HTTP off. Default 80. */
  httpPort?: number | false
  /** HTTPS port; 0 picks a free one; false turns HTTPS off. Default 443. */
  httpsPort?: number | false
  /** The relay serves `*.<domain>`. */
  domain: string
  authtokens?: string[]
  /** Digests of tokens (from a tokens file). */
  tokenDigests?: Buffer[]
  /** Tokens from a config file, with reserved names, TCP ports and limits; `Relay.reload` replaces them. */
  tokens?: TokenEntry[]
  /** Default limits of every token (a token's own limits override them). */
  limits?: TokenLimits
  allowAnonymous?: boolean
  /** Certificates, names and the CA are kept here. */
  stateDir?: string
  tlsCert?: string
  tlsKey?: string
  /** Largest request head in bytes; above it the client gets 431. Default 64 KiB. */
  maxHeaderSize?: number
  /** Time for a client to send its whole request head, in ms; then 408. Default 15 s. */
  headersTimeout?: number
  /** A connection with no traffic for this long is closed, in ms. Default 5 min. */
  idleTimeout?: number
  /** A link with no heartbeat answer for this long is dead, in ms. Default 15 s. */
  heartbeatTimeout?: number
  /** Time for an agent to complete its handshake, in ms. Default 10 s. */
  handshakeTimeout?: number
  /** Streams (requests in flight) one agent link may hold; beyond it clients get 503 GW_ERR_RELAY_OVERLOADED. Default 65,536. */
  maxStreamsPerAgent?: number
  /** Ports to print in public URLs when a proxy or NAT maps them. Default: the listening ports. */
  publicHttpPort?: number
  publicHttpsPort?: number
  /** `host:port` to serve Prometheus metrics at /metrics on; off when omitted. */
  metricsAddr?: string
  /** Access log: a file path, or `-` for stdout; off when omitted. */
  accessLog?: string
  /** Public ports for tcp endpoints (`gw tcp`): a range, or `any`; off (tcp endpoints refused) when omitted. */
  tcpPorts?: TcpPortRange
  /** Connections one tcp or tls endpoint may have open at once; past it new ones are reset. Default 1,000. */
  tcpMaxConnections?: number
  /** Certificates from an ACME CA (Let's Encrypt by default), issued on demand: acme/manager.ts. */
  acme?: AcmeOptions
  /** Run as one relay of a cluster sharing its state in Redis (cluster/cluster.ts). */
  cluster?: RelayClusterOptions
  /** A shared HTTP cache of this size for the endpoints whose agents ask for it (`--relay-cache`); off when omitted. */
  relayCache?: CacheOptions
  /** Serve hosts outside the domain that agents ask for, once DNS points them here (custom-domains.ts). Default off. */
  customDomains?: boolean
  /** `host:port` of the DNS server custom domains are checked with; the system's resolvers when omitted. */
  dnsServer?: string
  /** A worker of `gw relay --workers`: its metrics are served by the primary at `metricsAddr`, summed with the other workers' (metrics.ts), not by a listener of its own. */
  metricsViaPrimary?: boolean
  /** Give each tunnel a `http://127.0.0.1:<port>` URL of its own, whatever the Host (the embedded relay: loopback.ts). */
  loopbackUrls?: boolean
  log?: LogFn
}

export interface RelayClusterOptions {
  /**
   * redis://, rediss:// or redis-sentinel://host:port[,host:port]#master URL. Without it the
   * relay is a worker of `gw relay --workers` and shares its state through the primary
   * process (cluster/ipc-backend.ts).
   */
  redis?: string
  /** PEM of the CA that signed a rediss:// Redis's certificate (default: the system's CAs). */
  redisCa?: string
  /** The same on every relay: authenticates the relay-to-relay link (16 bytes or more). */
  secret: string
  /** host:port of the relay-to-relay listener. Default: the relay's host, any free port. */
  peerListen?: string
  /** host:port other relays dial (default: the listen address, or this machine's first IPv4 for 0.0.0.0). */
  peerAdvertise?: string
  /** URLs agents may fail over to this relay at (default: its own URLs on loopback, else https://DOMAIN). */
  agentUrls?: string[]
  /** Presence TTL in ms, refreshed every third of it. Default 15 s. */
  presenceTtl?: number
}

type OptionalOptions = 'tlsCert' | 'tlsKey' | 'publicHttpPort' | 'publicHttpsPort' | 'metricsAddr' | 'accessLog' | 'acme' | 'cluster' | 'tcpPorts' | 'relayCache' | 'dnsServer'
export type ResolvedRelayOptions = Required<Omit<RelayOptions, OptionalOptions>> & Pick<RelayOptions, OptionalOptions>

export const RELAY_DEFAULTS = {
  host: '0.0.0.0',
  httpPort: 80,
  httpsPort: 443,
  maxHeaderSize: LINK_DEFAULTS.maxHeaderSize,
  headersTimeout: 15_000,
  idleTimeout: 300_000,
  heartbeatTimeout: LINK_DEFAULTS.heartbeatTimeout,
  handshakeTimeout: LINK_DEFAULTS.handshakeTimeout,
  maxStreamsPerAgent: 65_536,
  tcpMaxConnections: 1_000,
} as const

export function defaultStateDir(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state')
  return join(base, 'gw', 'relay')
}


/** Refuse an open relay on a public address, unless asked for. */
export function checkAuthtokens(resolved: ResolvedRelayOptions, hasTokens: boolean): void {
  if (hasTokens || resolved.allowAnonymous || isLoopbackHost(resolved.host)) return
  throw new RelayError(
    'GW_ERR_RELAY_NO_AUTHTOKENS',
    `refusing to listen on ${resolved.host} without authtokens: anyone could open tunnels on your domain. ` +
      'Give --authtoken <token> (or GW_RELAY_AUTHTOKENS, or --authtokens-file), listen on 127.0.0.1, ' +
      `${resolved.cluster ? 'start a relay of the cluster with --config tokens first, ' : ''}or pass --allow-anonymous if an open relay is what you want`,
  )
}

export function resolveRelayOptions(options: RelayOptions): ResolvedRelayOptions {
  const domain = options.domain.toLowerCase().replace(/^\*\./, '').replace(/\.$/, '')
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(domain)) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--domain "${options.domain}" is not a domain name; give e.g. tunnel.example.com`)
  }
  const resolved: ResolvedRelayOptions = {
    host: options.host ?? RELAY_DEFAULTS.host,
    httpPort: options.httpPort ?? RELAY_DEFAULTS.httpPort,
    httpsPort: options.httpsPort ?? RELAY_DEFAULTS.httpsPort,
    domain,
    authtokens: options.authtokens ?? [],
    tokenDigests: options.tokenDigests ?? [],
    tokens: options.tokens ?? [],
    limits: options.limits ?? {},
    allowAnonymous: options.allowAnonymous ?? false,
    stateDir: options.stateDir ?? defaultStateDir(),
    tlsCert: options.tlsCert,
    tlsKey: options.tlsKey,
    maxHeaderSize: options.maxHeaderSize ?? RELAY_DEFAULTS.maxHeaderSize,
    headersTimeout: options.headersTimeout ?? RELAY_DEFAULTS.headersTimeout,
    idleTimeout: options.idleTimeout ?? RELAY_DEFAULTS.idleTimeout,
    heartbeatTimeout: options.heartbeatTimeout ?? RELAY_DEFAULTS.heartbeatTimeout,
    handshakeTimeout: options.handshakeTimeout ?? RELAY_DEFAULTS.handshakeTimeout,
    maxStreamsPerAgent: options.maxStreamsPerAgent ?? RELAY_DEFAULTS.maxStreamsPerAgent,
    publicHttpPort: options.publicHttpPort,
    publicHttpsPort: options.publicHttpsPort,
    metricsAddr: options.metricsAddr,
    accessLog: options.accessLog,
    acme: options.acme,
    cluster: options.cluster,
    tcpPorts: options.tcpPorts,
    tcpMaxConnections: options.tcpMaxConnections ?? RELAY_DEFAULTS.tcpMaxConnections,
    relayCache: options.relayCache,
    loopbackUrls: options.loopbackUrls ?? false,
    metricsViaPrimary: options.metricsViaPrimary ?? false,
    customDomains: options.customDomains ?? false,
    dnsServer: options.dnsServer === undefined ? undefined : parseDnsServer(options.dnsServer),
    log: options.log ?? (() => {}),
  }
  if (resolved.httpPort === false && resolved.httpsPort === false) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', 'both HTTP and HTTPS are turned off; give --http-port or --https-port')
  }
  if (resolved.dnsServer !== undefined && !resolved.customDomains) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--dns-server ${resolved.dnsServer} is only used to check custom domains; add --custom-domains, or drop --dns-server`)
  }
  if (resolved.acme && resolved.httpsPort === false) {
    throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', 'ACME certificates are served on the HTTPS listener; give --https-port, or drop --acme-email')
  }
  const hasTokens = resolved.authtokens.length > 0 || resolved.tokenDigests.length > 0 || resolved.tokens.length > 0
  // A cluster's relay may take its tokens from Redis (cluster/shared-config.ts): checked once they are read.
  if (!resolved.cluster) checkAuthtokens(resolved, hasTokens)

  if (resolved.relayCache) {
    const { maxBytes, maxEntryBytes } = resolved.relayCache
    if (!Number.isFinite(maxBytes) || maxBytes < 1024) throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--relay-cache must be at least 1KiB, got ${maxBytes} bytes; give a size such as 256MB`)
    if (maxEntryBytes !== undefined && (!Number.isFinite(maxEntryBytes) || maxEntryBytes <= 0)) {
      throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--relay-cache-max-entry must be a positive size, got ${maxEntryBytes}; give e.g. 8MB`)
    }
    const { dir, dirMaxBytes } = resolved.relayCache
    if (dir !== undefined && dir.trim() === '') throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', '--relay-cache-dir is empty; give a directory, e.g. /var/cache/gw-relay')
    if (dirMaxBytes !== undefined && (!Number.isFinite(dirMaxBytes) || dirMaxBytes < 1024 * 1024)) {
      throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `--relay-cache-dir-size must be at least 1MiB, got ${dirMaxBytes} bytes; give a size such as 10GB`)
    }
  }
  for (const [flag, value] of [
    ['--max-header-size', resolved.maxHeaderSize],
    ['--headers-timeout', resolved.headersTimeout],
    ['--idle-timeout', resolved.idleTimeout],
    ['--heartbeat-timeout', resolved.heartbeatTimeout],
    ['--tcp-max-connections', resolved.tcpMaxConnections],
  ] as const) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new RelayError('GW_ERR_RELAY_OPTION_INVALID', `${flag} must be a positive number, got ${value}`)
    }
  }
  return resolved
}
