/**
 * ngrok's older config shape: `tunnels:` (v2 files, and still allowed in v3 ones) and the
 * v2 top-level agent keys (`authtoken`, `server_addr`, `web_addr`, `log`). The common
 * http tunnel fields become a v3 endpoint, their old flag-style options the traffic
 * policy rules ngrok itself maps them to. Anything else is refused with its name, so a
 * file is never reported valid while part of it is ignored.
 */
import type { AgentConfig, EndpointConfig } from './config-types.js'
import { CliError } from '../errors.js'

/** v2 top-level keys gw reads, and those it has no use for (gw has no regions, no updater). */
const V2_AGENT_KEYS: Record<string, keyof NonNullable<AgentConfig['agent']> | null> = {
  authtoken: 'authtoken',
  server_addr: 'connect_url',
  web_addr: 'web_addr',
  log: 'log',
  region: null,
  console_ui: null,
  console_ui_color: null,
  log_level: null,
  log_format: null,
  update_channel: null,
  update_check: null,
  metadata: null,
  inspect_db_size: null,
  heartbeat_interval: null,
  heartbeat_tolerance: null,
}

const TUNNEL_KEYS = new Set([
  'proto', 'addr', 'inspect', 'auth', 'basic_auth', 'host_header', 'hostname', 'domain', 'subdomain', 'schemes', 'bind_tls',
  'metadata', 'ip_restriction', 'request_header', 'response_header', 'compression', 'circuit_breaker', 'webhook_verification',
])

type Raw = Record<string, unknown>

function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function strings(v: unknown, what: string, fail: (why: string) => never): string[] {
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) fail(`${what} must be a list of strings`)
  return list as string[]
}

function headerMap(list: string[], what: string, fail: (why: string) => never): Record<string, string> {
  const out: Record<string, string> = {}
  for (const entry of list) {
    const i = entry.indexOf(':')
    if (i <= 0) fail(`${what} entries are "Name: value", got ${JSON.stringify(entry)}`)
    out[entry.slice(0, i).trim()] = entry.slice(i + 1).trim()
  }
  return out
}

/** One v2 tunnel as a v3 endpoint. */
export function tunnelToEndpoint(name: string, tunnel: unknown, file: string): EndpointConfig {
  const fail = (why: string): never => {
    throw new CliError('GW_ERR_CONFIG', `${file}: tunnels.${name}: ${why}`)
  }
  if (!isMap(tunnel)) fail('must be a mapping (proto, addr, …)')
  const t = tunnel as Raw
  const unknown = Object.keys(t).filter((k) => !TUNNEL_KEYS.has(k))
  if (unknown.length > 0) fail(`gw does not support ${unknown.join(', ')} in a tunnel; remove ${unknown.length === 1 ? 'it' : 'them'}, or move the endpoint to an endpoints: entry with a traffic_policy`)
  const proto = t.proto ?? 'http'
  if (proto !== 'http') fail(`proto ${String(proto)} is not supported: gw serves http tunnels only`)
  if (t.addr === undefined || (typeof t.addr !== 'string' && typeof t.addr !== 'number')) fail('needs addr (a port, host:port or URL)')

  const endpoint: EndpointConfig = { name, upstream: { url: t.addr as string | number } }
  const host = t.hostname ?? t.domain
  if (host !== undefined) endpoint.url = String(host)
  else if (t.subdomain !== undefined) endpoint.url = String(t.subdomain)
  if (t.host_header !== undefined) endpoint.host_header = String(t.host_header)
  if (t.inspect !== undefined) {
    if (typeof t.inspect !== 'boolean') fail('inspect must be true or false')
    endpoint.inspect = t.inspect as boolean
  }

  const onRequest: unknown[] = []
  const onResponse: unknown[] = []
  const credentials = [...(t.auth !== undefined ? strings(t.auth, 'auth', fail) : []), ...(t.basic_auth !== undefined ? strings(t.basic_auth, 'basic_auth', fail) : [])]
  if (credentials.length > 0) onRequest.push({ actions: [{ type: 'basic-auth', config: { credentials } }] })
  if (t.ip_restriction !== undefined) {
    if (!isMap(t.ip_restriction)) fail('ip_restriction must be a mapping (allow_cidrs, deny_cidrs)')
    const r = t.ip_restriction as Raw
    const config: Raw = {}
    if (r.allow_cidrs !== undefined) config.allow = strings(r.allow_cidrs, 'ip_restriction.allow_cidrs', fail)
    if (r.deny_cidrs !== undefined) config.deny = strings(r.deny_cidrs, 'ip_restriction.deny_cidrs', fail)
    onRequest.push({ actions: [{ type: 'restrict-ips', config }] })
  }
  if (t.webhook_verification !== undefined) {
    if (!isMap(t.webhook_verification)) fail('webhook_verification must be a mapping (provider, secret)')
    onRequest.push({ actions: [{ type: 'verify-webhook', config: t.webhook_verification }] })
  }
  for (const [key, rules] of [['request_header', onRequest], ['response_header', onResponse]] as const) {
    const h = t[key]
    if (h === undefined) continue
    if (!isMap(h)) fail(`${key} must be a mapping (add, remove)`)
    const { add, remove } = h as Raw
    if (remove !== undefined) rules.push({ actions: [{ type: 'remove-headers', config: { headers: strings(remove, `${key}.remove`, fail) } }] })
    if (add !== undefined) rules.push({ actions: [{ type: 'add-headers', config: { headers: headerMap(strings(add, `${key}.add`, fail), `${key}.add`, fail) } }] })
  }
  if (t.circuit_breaker !== undefined) {
    if (typeof t.circuit_breaker !== 'number') fail('circuit_breaker must be a number (the error ratio, e.g. 0.5)')
    onResponse.push({ actions: [{ type: 'circuit-breaker', config: { error_threshold: t.circuit_breaker } }] })
  }
  if (t.compression === true) onResponse.push({ actions: [{ type: 'compress-response' }] })
  if (onRequest.length > 0 || onResponse.length > 0) {
    endpoint.traffic_policy = { ...(onRequest.length ? { on_http_request: onRequest } : {}), ...(onResponse.length ? { on_http_response: onResponse } : {}) }
  }
  return endpoint
}

/** The v2 top-level keys and `tunnels:` folded into the v3 shape. Mutates and returns `config`. */
export function foldTunnels(config: AgentConfig & Raw, file: string): AgentConfig {
  const v2 = String(config.version ?? '') === '2'
  if (v2) {
    const agent: Raw = { ...(config.agent ?? {}) }
    for (const [key, value] of Object.entries(config)) {
      if (key === 'version' || key === 'tunnels' || key === 'agent' || key === 'endpoints') continue
      if (!(key in V2_AGENT_KEYS)) throw new CliError('GW_ERR_CONFIG', `${file}: gw does not support the v2 key ${key}; remove it`)
      const target = V2_AGENT_KEYS[key]
      if (target) agent[target] = value
      delete config[key]
    }
    config.agent = agent as AgentConfig['agent']
  }
  const tunnels = config.tunnels
  if (tunnels === undefined) return config
  if (!isMap(tunnels)) throw new CliError('GW_ERR_CONFIG', `${file}: "tunnels" must be a mapping of names to tunnels`)
  const endpoints = [...(config.endpoints ?? [])]
  for (const [name, tunnel] of Object.entries(tunnels)) {
    if (endpoints.some((e) => e?.name === name)) throw new CliError('GW_ERR_CONFIG', `${file}: "${name}" is both a tunnel and an endpoint; rename one`)
    endpoints.push(tunnelToEndpoint(name, tunnel, file))
  }
  delete config.tunnels
  config.endpoints = endpoints
  return config
}
