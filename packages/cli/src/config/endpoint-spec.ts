/**
 * One endpoint definition (a config file's `endpoints:` entry, a v2 tunnel folded into
 * that shape, or a body posted to the agent API) checked and turned into what the agent
 * starts. `gw start` and `POST /api/endpoints` share it, so both refuse the same things
 * with the same reasons.
 */
import { CliError } from '../errors.js'
import { parseUpstream } from '../upstream/address.js'
import { parseTcpUpstream } from '../upstream/tcp-address.js'
import { UPSTREAM_PROTOCOLS, type UpstreamProtocol } from '../upstream/dispatcher.js'
import type { AgentEndpointOptions } from '../agent/agent.js'
import type { EndpointPolicyInput } from '../endpoint-policy.js'
import type { EndpointConfig } from './config-file.js'
import { checkBinding, parseEndpointUrl } from './endpoint-url.js'
import { parseRawInternalUrl, parseTcpEndpointUrl, parseTlsEndpointUrl } from './tcp-endpoint-url.js'

export interface EndpointSpec extends Omit<AgentEndpointOptions, 'policy'> {
  /** Compiled later, by whoever starts it, from policyInput. */
  policy?: never
  policyInput?: Omit<EndpointPolicyInput, 'events' | 'endpoint'>
}

/** `where` prefixes every message, e.g. `gw.yml: endpoint "api":`. */
export function endpointSpec(e: EndpointConfig, where: string, kind: 'GW_ERR_CONFIG' | 'GW_ERR_INVALID_FLAG' = 'GW_ERR_CONFIG'): EndpointSpec {
  if (e.upstream?.url === undefined) throw new CliError(kind, `${where} needs upstream.url (a port, host:port or URL)`)
  // `url: tcp://…` and `url: tls://…` are tcp and tls endpoints, as `gw tcp` and `gw tls` make.
  const scheme = e.url === undefined ? undefined : /^(tcp|tls):\/\//i.exec(String(e.url).trim())?.[1]?.toLowerCase()
  if (scheme === 'tcp' || scheme === 'tls') return rawEndpointSpec(e, scheme, where, kind)
  parseUpstream(String(e.upstream.url))
  const protocol = e.upstream.protocol === undefined ? undefined : upstreamProtocol(e.upstream.protocol, `${where} upstream.protocol`, kind)
  for (const binding of e.bindings ?? []) checkBinding(binding, `${where} bindings`, true)
  const asked = e.url !== undefined ? parseEndpointUrl(String(e.url), `${where} url`) : undefined
  const bindings = e.bindings ?? []
  if (bindings.includes('internal') && bindings.includes('public')) throw new CliError(kind, `${where} bindings: an endpoint is public or internal, not both`)
  if (bindings.includes('internal') && !asked?.internalHost) {
    throw new CliError(kind, `${where} bindings [internal] needs url: https://<name>.internal (forward-internal finds it by that URL)`)
  }
  if (asked?.internalHost && bindings.includes('public')) throw new CliError(kind, `${where} url ${e.url}: a *.internal URL is an internal endpoint; drop bindings: [public]`)
  if (asked?.internalHost && e.pooling_enabled === true) throw new CliError(kind, `${where} pooling_enabled: an internal endpoint is not on the relay, so it cannot be pooled`)
  return {
    name: e.name,
    upstream: String(e.upstream.url),
    ...(protocol === 'http2' ? { upstreamProtocol: 'http2' as const } : {}),
    ...(asked?.publicName ? { publicName: asked.publicName } : {}),
    ...(asked?.internalHost ? { internalHost: asked.internalHost } : {}),
    ...(asked?.publicHost ? { publicHost: asked.publicHost } : {}),
    ...(e.pooling_enabled === true ? { pooling: true } : {}),
    ...(e.relay_cache === true ? { relayCache: true } : {}),
    ...(e.inspect !== undefined ? { inspect: e.inspect } : {}),
    ...(e.host_header ? { hostHeader: e.host_header } : {}),
    ...(e.traffic_policy ? { policyInput: { inline: e.traffic_policy } } : {}),
  }
}

/** A tcp or tls endpoint from the config file: raw connections, on_tcp_connect as its policy. */
function rawEndpointSpec(e: EndpointConfig, proto: 'tcp' | 'tls', where: string, kind: 'GW_ERR_CONFIG' | 'GW_ERR_INVALID_FLAG'): EndpointSpec {
  parseTcpUpstream(String(e.upstream!.url))
  if (e.upstream!.protocol !== undefined) throw new CliError(kind, `${where} upstream.protocol: a ${proto} endpoint passes bytes as they come; leave it out`)
  if (e.host_header) throw new CliError(kind, `${where} host_header: a ${proto} endpoint carries no HTTP; leave it out`)
  const url = String(e.url)
  const bindings = e.bindings ?? []
  for (const binding of bindings) checkBinding(binding, `${where} bindings`, true)
  // `tcp://camera.internal:22`: an internal endpoint, reached by forward-internal from on_tcp_connect.
  const internalHost = parseRawInternalUrl(url, proto, `${where} url`)
  if (bindings.includes('internal') && internalHost === undefined) {
    throw new CliError(kind, `${where} bindings [internal] needs url: ${proto}://<name>.internal${proto === 'tcp' ? ':<port>' : ''} (forward-internal finds it by that URL)`)
  }
  if (internalHost !== undefined && bindings.includes('public')) throw new CliError(kind, `${where} url ${url}: a *.internal URL is an internal endpoint; drop bindings: [public]`)
  if (internalHost !== undefined && e.pooling_enabled === true) throw new CliError(kind, `${where} pooling_enabled: an internal endpoint is not on the relay's public side, so it cannot be pooled`)
  let target: Partial<EndpointSpec>
  if (internalHost !== undefined) target = { internalHost }
  else if (proto === 'tcp') {
    // `tcp://host:port` asks for the port; `tcp://` alone (or with no port) takes one from the relay's range.
    const bare = url.trim().replace(/^tcp:\/\//i, '')
    target = bare === '' || !/:\d+\/?$/.test(bare) ? {} : { remotePort: parseTcpEndpointUrl(url, `${where} url`) }
  } else {
    const asked = url.trim().replace(/^tls:\/\//i, '') === '' ? undefined : parseTlsEndpointUrl(url, `${where} url`)
    target = asked ? { publicName: asked.publicName, ...(asked.publicHost ? { publicHost: asked.publicHost } : {}) } : {}
  }
  return {
    name: e.name,
    proto,
    upstream: String(e.upstream!.url),
    ...target,
    ...(e.pooling_enabled === true ? { pooling: true } : {}),
    ...(e.traffic_policy ? { policyInput: { inline: e.traffic_policy, kind: proto } } : {}),
  }
}

/**
 * `http1` or `http2`, as ngrok's `--upstream-protocol` and `upstream.protocol` take them.
 * `where` names the flag or key in the message.
 */
export function upstreamProtocol(value: unknown, where: string, kind: 'GW_ERR_CONFIG' | 'GW_ERR_INVALID_FLAG' = 'GW_ERR_CONFIG'): UpstreamProtocol {
  if (typeof value === 'string' && (UPSTREAM_PROTOCOLS as readonly string[]).includes(value)) return value as UpstreamProtocol
  throw new CliError(kind, `${where} ${JSON.stringify(value)}: give http1 (the default) or http2 (h2c, or h2 over TLS to an https upstream, as gRPC needs)`)
}
