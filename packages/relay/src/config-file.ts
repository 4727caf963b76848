/**
 * The relay's config file (`gw relay --config relay.yml`): its settings, its tokens with
 * their reserved names and TCP ports, and per-token limits.
 *
 *   domain: tunnel.example.com
 *   http_port: 80
 *   https_port: 443
 *   tls: { cert: /etc/gw/fullchain.pem, key: /etc/gw/privkey.pem }
 *   limits: { tunnels: 10, streams: 100, rps: 50, bandwidth: 10MiB, header_size: 16KiB, body_size: 10MiB }   # every token's default
 *   tokens:
 *     - label: alice
 *       sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
 *       names: [app, api]
 *       tcp_ports: [20001]
 *       limits: { rps: 20 }
 *     - label: ci
 *       env: GW_TOKEN_CI          # the token is in this environment variable
 *     - label: bob
 *       file: /etc/gw/bob.token   # or in this file (its first line)
 *
 * Tokens are never written in the file in clear: a `sha256:` digest, or a reference to
 * where the token is. Every error names the key, the value and the fix, on one line.
 */
import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'
import { RelayError } from './errors.js'
import { hashToken } from './authtokens.js'
import { checkName } from './names.js'
import type { TokenEntry, TokenLimits } from './access.js'
import type { RelayOptions } from './options.js'
import { parseTcpPorts } from './tcp-ports.js'
import { parseDnsServer } from './custom-domains.js'

/** Settings the file may hold that only take effect at start. */
export type FileSettings = Pick<RelayOptions,
  'domain' | 'host' | 'httpPort' | 'httpsPort' | 'publicHttpPort' | 'publicHttpsPort' | 'stateDir' | 'tlsCert' | 'tlsKey' |
  'allowAnonymous' | 'metricsAddr' | 'accessLog' | 'maxHeaderSize' | 'maxStreamsPerAgent' | 'tcpPorts' | 'tcpMaxConnections' | 'relayCache' | 'customDomains' | 'dnsServer'>

export interface RelayFileConfig {
  path: string
  settings: Partial<FileSettings>
  tokens: TokenEntry[]
  limits: TokenLimits
  /** Seconds requests in flight get to finish on SIGTERM (`drain_timeout`, the CLI's --drain-timeout); read when the signal comes, so a reload changes it. */
  drainTimeout?: number
}

const TOP_KEYS = ['domain', 'host', 'http_port', 'https_port', 'public_http_port', 'public_https_port', 'state_dir', 'tls',
  'allow_anonymous', 'metrics_addr', 'access_log', 'max_header_size', 'max_streams_per_agent', 'tcp_ports', 'tcp_max_connections',
  'relay_cache', 'relay_cache_max_entry', 'relay_cache_dir', 'relay_cache_dir_size', 'custom_domains', 'dns_server', 'drain_timeout', 'limits', 'tokens'] as const
const TOKEN_KEYS = ['label', 'sha256', 'env', 'file', 'token', 'names', 'tcp_ports', 'limits'] as const
const LIMIT_KEYS = ['tunnels', 'streams', 'rps', 'bandwidth', 'header_size', 'body_size'] as const

class ConfigProblem {
  constructor(readonly path: string) {}
  fail(key: string, value: unknown, fix: string): never {
    throw new RelayError('GW_ERR_RELAY_CONFIG', `${this.path}: ${key}: ${show(value)} ${fix}`)
  }
}

function show(value: unknown): string {
  if (value === undefined) return '(missing)'
  const text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkKeys(p: ConfigProblem, where: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) p.fail(where ? `${where}.${key}` : key, value[key], `is not a known key; the keys here are ${known.join(', ')}`)
  }
}

function port(p: ConfigProblem, key: string, value: unknown, off: boolean): number | false {
  if (off && (value === false || value === -1 || value === 'off')) return false
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    p.fail(key, value, `is not a port; give 0-65535${off ? ', or off' : ''}`)
  }
  return value
}

function str(p: ConfigProblem, key: string, value: unknown, example: string): string {
  if (typeof value !== 'string' || value.trim() === '') p.fail(key, value, `is not a string; give e.g. ${example}`)
  return value.trim()
}

function positive(p: ConfigProblem, key: string, value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) p.fail(key, value, `is not a positive number; give ${what}`)
  return value
}

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 }

/** `1048576`, `512KiB`, `10MB`, `1 MiB/s`: bytes per second. */
export function parseBandwidth(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value : undefined
  if (typeof value !== 'string') return undefined
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?(?:\/s)?$/i.exec(value.trim())
  if (!m) return undefined
  const n = Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!
  return n > 0 ? Math.floor(n) : undefined
}

/** `268435456`, `256MB`, `1GiB`: bytes. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'string' && /\/s$/i.test(value.trim())) return undefined
  return parseBandwidth(value)
}

function limits(p: ConfigProblem, key: string, value: unknown): TokenLimits {
  if (value === undefined || value === null) return {}
  if (!isObject(value)) p.fail(key, value, 'is not a map; give e.g. { tunnels: 5, streams: 100, rps: 50, bandwidth: 1MiB }')
  checkKeys(p, key, value, LIMIT_KEYS)
  const out: TokenLimits = {}
  if (value.tunnels !== undefined) out.tunnels = Math.floor(positive(p, `${key}.tunnels`, value.tunnels, 'the number of tunnels, e.g. 5'))
  if (value.streams !== undefined) out.streams = Math.floor(positive(p, `${key}.streams`, value.streams, 'the requests in flight at once, e.g. 100'))
  if (value.rps !== undefined) out.rps = positive(p, `${key}.rps`, value.rps, 'requests per second, e.g. 50')
  if (value.bandwidth !== undefined) {
    const bw = parseBandwidth(value.bandwidth)
    if (bw === undefined) p.fail(`${key}.bandwidth`, value.bandwidth, 'is not a rate; give bytes per second, e.g. 1048576, 512KiB or 10MB')
    out.bandwidth = bw
  }
  if (value.header_size !== undefined) {
    const size = parseSize(value.header_size)
    if (size === undefined) p.fail(`${key}.header_size`, value.header_size, 'is not a size; give bytes, e.g. 8192 or 16KiB')
    out.headerSize = size
  }
  if (value.body_size !== undefined) {
    const size = parseSize(value.body_size)
    if (size === undefined) p.fail(`${key}.body_size`, value.body_size, 'is not a size; give bytes, e.g. 1048576, 512KiB or 10MB')
    out.bodySize = size
  }
  return out
}

function tokenEntry(p: ConfigProblem, index: number, value: unknown, env: NodeJS.ProcessEnv): TokenEntry {
  const key = `tokens[${index}]`
  if (!isObject(value)) p.fail(key, value, 'is not a map; give e.g. { label: alice, sha256: <64 hex> }')
  checkKeys(p, key, value, TOKEN_KEYS)
  const label = value.label === undefined ? `#${index + 1}` : str(p, `${key}.label`, value.label, 'alice')
  if (value.token !== undefined) {
    p.fail(`${key}.token`, '(hidden)', 'is a token in clear, which the file does not keep; give sha256: <printf %s TOKEN | sha256sum>, env: VARIABLE or file: PATH')
  }
  const sources = (['sha256', 'env', 'file'] as const).filter((k) => value[k] !== undefined)
  if (sources.length !== 1) {
    p.fail(key, sources.length === 0 ? undefined : sources.join(' and '), 'needs exactly one of sha256, env or file')
  }
  let digest: Buffer
  const source = sources[0]!
  if (source === 'sha256') {
    const hex = String(value.sha256)
    if (!/^[0-9a-f]{64}$/i.test(hex)) p.fail(`${key}.sha256`, value.sha256, 'is not 64 hex digits; give the output of printf %s TOKEN | sha256sum')
    digest = Buffer.from(hex, 'hex')
  } else if (source === 'env') {
    const name = str(p, `${key}.env`, value.env, 'GW_TOKEN_ALICE')
    const token = env[name]?.trim()
    if (!token) p.fail(`${key}.env`, name, 'names an environment variable that is unset or empty; set it for the relay, or use sha256')
    digest = hashToken(token)
  } else {
    const path = str(p, `${key}.file`, value.file, '/etc/gw/alice.token')
    let token: string
    try {
      token = readFileSync(path, 'utf8').split(/\r?\n/)[0]!.trim()
    } catch (err) {
      p.fail(`${key}.file`, path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path and its permissions`)
    }
    if (!token) p.fail(`${key}.file`, path, 'is empty; put the token on its first line')
    digest = hashToken(token)
  }
  const names: string[] = []
  if (value.names !== undefined) {
    if (!Array.isArray(value.names)) p.fail(`${key}.names`, value.names, 'is not a list; give e.g. [app, api]')
    for (const [i, n] of value.names.entries()) {
      try {
        names.push(checkName(String(n)))
      } catch {
        p.fail(`${key}.names[${i}]`, n, 'is not a valid name; give a DNS label: lowercase letters, digits and -, at most 63')
      }
    }
  }
  const tcpPorts: number[] = []
  if (value.tcp_ports !== undefined) {
    if (!Array.isArray(value.tcp_ports)) p.fail(`${key}.tcp_ports`, value.tcp_ports, 'is not a list; give e.g. [20001, 20002]')
    for (const [i, n] of value.tcp_ports.entries()) {
      const v = port(p, `${key}.tcp_ports[${i}]`, n, false)
      if (v === 0) p.fail(`${key}.tcp_ports[${i}]`, n, 'is not a port a tunnel can hold; give 1-65535')
      tcpPorts.push(v as number)
    }
  }
  return { label, digest, names, tcpPorts, limits: limits(p, `${key}.limits`, value.limits) }
}

/** Read and check a relay config file. Throws GW_ERR_RELAY_CONFIG with a one-line reason. */
export function loadRelayConfig(path: string, env: NodeJS.ProcessEnv = process.env): RelayFileConfig {
  const p: ConfigProblem = new ConfigProblem(path)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new RelayError('GW_ERR_RELAY_CONFIG', `${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path given to --config`, { cause: err })
  }
  const doc = parseDocument(text, { uniqueKeys: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const where = e.linePos?.[0] ? `${e.linePos[0].line}:${e.linePos[0].col}` : '?'
    throw new RelayError('GW_ERR_RELAY_CONFIG', `${path}:${where}: not valid YAML (${e.message.split('\n')[0]}); fix the syntax there`)
  }
  const raw: unknown = doc.toJS() ?? {}
  if (!isObject(raw)) p.fail('(top level)', raw, 'is not a map; start with e.g. domain: tunnel.example.com')
  checkKeys(p, '', raw, TOP_KEYS)
  const settings: Partial<FileSettings> = {}
  if (raw.domain !== undefined) settings.domain = str(p, 'domain', raw.domain, 'tunnel.example.com')
  if (raw.host !== undefined) settings.host = str(p, 'host', raw.host, '0.0.0.0')
  if (raw.http_port !== undefined) settings.httpPort = port(p, 'http_port', raw.http_port, true)
  if (raw.https_port !== undefined) settings.httpsPort = port(p, 'https_port', raw.https_port, true)
  if (raw.public_http_port !== undefined) settings.publicHttpPort = port(p, 'public_http_port', raw.public_http_port, false) as number
  if (raw.public_https_port !== undefined) settings.publicHttpsPort = port(p, 'public_https_port', raw.public_https_port, false) as number
  if (raw.state_dir !== undefined) settings.stateDir = str(p, 'state_dir', raw.state_dir, '/var/lib/gw-relay')
  if (raw.metrics_addr !== undefined) settings.metricsAddr = str(p, 'metrics_addr', raw.metrics_addr, '127.0.0.1:9464')
  if (raw.access_log !== undefined) settings.accessLog = str(p, 'access_log', raw.access_log, '/var/log/gw-relay/access.log')
  if (raw.allow_anonymous !== undefined) {
    if (typeof raw.allow_anonymous !== 'boolean') p.fail('allow_anonymous', raw.allow_anonymous, 'is not true or false')
    settings.allowAnonymous = raw.allow_anonymous
  }
  if (raw.max_header_size !== undefined) settings.maxHeaderSize = Math.floor(positive(p, 'max_header_size', raw.max_header_size, 'bytes, e.g. 65536'))
  if (raw.max_streams_per_agent !== undefined) settings.maxStreamsPerAgent = Math.floor(positive(p, 'max_streams_per_agent', raw.max_streams_per_agent, 'a count, e.g. 65536'))
  if (raw.tcp_ports !== undefined) {
    try {
      settings.tcpPorts = parseTcpPorts(String(raw.tcp_ports), 'tcp_ports')
    } catch {
      p.fail('tcp_ports', raw.tcp_ports, 'is not a port range; give e.g. 20000-20100, one port, or any')
    }
  }
  if (raw.tcp_max_connections !== undefined) settings.tcpMaxConnections = Math.floor(positive(p, 'tcp_max_connections', raw.tcp_max_connections, 'a count, e.g. 1000'))
  if (raw.relay_cache !== undefined) {
    const maxBytes = parseSize(raw.relay_cache)
    if (maxBytes === undefined) p.fail('relay_cache', raw.relay_cache, 'is not a size; give bytes, e.g. 268435456, 256MB or 1GiB')
    settings.relayCache = { maxBytes }
  }
  if (raw.relay_cache_max_entry !== undefined) {
    const maxEntryBytes = parseSize(raw.relay_cache_max_entry)
    if (maxEntryBytes === undefined) p.fail('relay_cache_max_entry', raw.relay_cache_max_entry, 'is not a size; give bytes, e.g. 8MB')
    if (!settings.relayCache) p.fail('relay_cache_max_entry', raw.relay_cache_max_entry, 'needs relay_cache (the cache\'s size) beside it')
    settings.relayCache.maxEntryBytes = maxEntryBytes
  }
  if (raw.relay_cache_dir !== undefined) {
    const dir = str(p, 'relay_cache_dir', raw.relay_cache_dir, '/var/cache/gw-relay')
    if (!settings.relayCache) p.fail('relay_cache_dir', raw.relay_cache_dir, 'needs relay_cache (the memory tier\'s size) beside it')
    settings.relayCache.dir = dir
  }
  if (raw.relay_cache_dir_size !== undefined) {
    const dirMaxBytes = parseSize(raw.relay_cache_dir_size)
    if (dirMaxBytes === undefined) p.fail('relay_cache_dir_size', raw.relay_cache_dir_size, 'is not a size; give bytes, e.g. 10GB')
    if (!settings.relayCache?.dir) p.fail('relay_cache_dir_size', raw.relay_cache_dir_size, 'needs relay_cache_dir (the directory) beside it')
    settings.relayCache.dirMaxBytes = dirMaxBytes
  }
  if (raw.custom_domains !== undefined) {
    if (typeof raw.custom_domains !== 'boolean') p.fail('custom_domains', raw.custom_domains, 'is not true or false')
    settings.customDomains = raw.custom_domains
  }
  if (raw.dns_server !== undefined) {
    const server = str(p, 'dns_server', raw.dns_server, '127.0.0.1:53')
    try {
      settings.dnsServer = parseDnsServer(server, 'dns_server')
    } catch {
      p.fail('dns_server', raw.dns_server, 'is not a DNS server address; give an IP address with an optional port, e.g. 127.0.0.1:53')
    }
    if (settings.customDomains !== true) p.fail('dns_server', raw.dns_server, 'is only used to check custom domains; add custom_domains: true beside it')
  }
  if (raw.tls !== undefined) {
    if (!isObject(raw.tls)) p.fail('tls', raw.tls, 'is not a map; give { cert: fullchain.pem, key: privkey.pem }')
    checkKeys(p, 'tls', raw.tls, ['cert', 'key'])
    if ((raw.tls.cert === undefined) !== (raw.tls.key === undefined)) {
      p.fail(raw.tls.cert === undefined ? 'tls.cert' : 'tls.key', undefined, 'is needed with the other; give both tls.cert and tls.key, or neither for a generated certificate')
    }
    if (raw.tls.cert !== undefined) {
      settings.tlsCert = str(p, 'tls.cert', raw.tls.cert, '/etc/gw/fullchain.pem')
      settings.tlsKey = str(p, 'tls.key', raw.tls.key, '/etc/gw/privkey.pem')
    }
  }
  const tokens: TokenEntry[] = []
  if (raw.tokens !== undefined && raw.tokens !== null) {
    if (!Array.isArray(raw.tokens)) p.fail('tokens', raw.tokens, 'is not a list; give e.g. - { label: alice, sha256: <64 hex> }')
    const seen = new Map<string, number>()
    const reserved = new Map<string, number>()
    for (const [i, value] of raw.tokens.entries()) {
      const entry = tokenEntry(p, i, value, env)
      const hex = entry.digest.toString('hex')
      if (seen.has(hex)) p.fail(`tokens[${i}]`, entry.label, `is the same token as tokens[${seen.get(hex)}]; remove one`)
      seen.set(hex, i)
      for (const name of entry.names) {
        if (reserved.has(name)) p.fail(`tokens[${i}].names`, name, `is also reserved by tokens[${reserved.get(name)}]; a name belongs to one token`)
        reserved.set(name, i)
      }
      tokens.push(entry)
    }
  }
  let drainTimeout: number | undefined
  if (raw.drain_timeout !== undefined) {
    if (typeof raw.drain_timeout !== 'number' || !Number.isInteger(raw.drain_timeout) || raw.drain_timeout < 0) {
      p.fail('drain_timeout', raw.drain_timeout, 'is not a whole number of seconds; give e.g. 30 (0 cuts requests at once)')
    }
    drainTimeout = raw.drain_timeout
  }
  return { path, settings, tokens, limits: limits(p, 'limits', raw.limits), ...(drainTimeout !== undefined ? { drainTimeout } : {}) }
}
