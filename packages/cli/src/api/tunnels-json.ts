/**
 * `/api/tunnels` and `/api/status` in ngrok's shapes, so scripts written for ngrok work
 * unchanged (`jq -r '.tunnels[0].public_url'`, `.tunnels[] | select(.proto=="https")`).
 *
 * As ngrok's v2 agent did, each public URL is its own entry: a tunnel with an https and
 * an http URL lists https first under the tunnel's name, then `name (http)`. The
 * embedded relay's per-tunnel `http://127.0.0.1:<port>` comes last, as `name (loopback)`.
 * Internal endpoints (`https://<name>.internal`) follow the public ones, so
 * `.tunnels[0]` stays a public URL.
 */
import { allEndpoints, type AgentStatus, type TunnelInfo } from '../agent/events.js'
import type { Metrics } from '../inspect/metrics.js'
import type { TunnelMeta } from './tunnel-control.js'

export interface TunnelEntry {
  /** The name in the API: `command_line`, or `command_line (http)` for a second URL, `command_line (loopback)` for the embedded relay's 127.0.0.1 one. */
  apiName: string
  info: TunnelInfo
  publicUrl: string
  proto: 'http' | 'https' | 'tcp' | 'tls'
}

function protoOf(url: string): 'http' | 'https' | 'tcp' | 'tls' {
  return url.startsWith('https:') ? 'https' : url.startsWith('tcp:') ? 'tcp' : url.startsWith('tls:') ? 'tls' : 'http'
}

export function tunnelEntries(status: AgentStatus): TunnelEntry[] {
  const out: TunnelEntry[] = []
  for (const info of allEndpoints(status)) {
    const urls = info.publicUrls.length > 0 ? [...info.publicUrls] : [info.publicUrl]
    // https first, like ngrok; the sort is stable so the relay's order holds otherwise.
    urls.sort((a, b) => (protoOf(a) === 'https' ? 0 : 1) - (protoOf(b) === 'https' ? 0 : 1))
    urls.forEach((url, i) => {
      const proto = protoOf(url)
      const label = isLoopbackUrl(url) ? 'loopback' : proto
      out.push({ apiName: i === 0 ? info.name : `${info.name} (${label})`, info, publicUrl: url, proto })
    })
  }
  return out
}

/** `http://127.0.0.1:<port>`: the embedded relay's URL of one tunnel. */
function isLoopbackUrl(url: string): boolean {
  return /^http:\/\/(127\.0\.0\.1|\[::1\]):\d+$/.test(url)
}

/** The API name a request through `tunnel` over `scheme` is listed under. */
export function apiTunnelName(entries: TunnelEntry[], tunnel: string, scheme: string): string {
  const mine = entries.filter((e) => e.info.name === tunnel || e.info.publicName === tunnel)
  return (mine.find((e) => e.proto === scheme) ?? mine[0])?.apiName ?? tunnel
}

export function tunnelJson(entry: TunnelEntry, metrics: Metrics): object {
  const { conns, http } = metrics.snapshot(entry.info.name)
  return {
    name: entry.apiName,
    uri: `/api/tunnels/${encodeURIComponent(entry.apiName)}`,
    public_url: entry.publicUrl,
    proto: entry.proto,
    config: { addr: entry.info.upstream, inspect: entry.info.inspect },
    metrics: { conns, http },
  }
}

export function tunnelsJson(status: AgentStatus, metrics: Metrics): object {
  return { tunnels: tunnelEntries(status).map((e) => tunnelJson(e, metrics)), uri: '/api/tunnels' }
}

/**
 * ngrok's `/api/status` (`status`, `agent_version`, `session.legs[].latency`, `uri`),
 * with gw's own fields under `gw`.
 */
export function statusJson(status: AgentStatus, metrics: Metrics, capture: { enabled: boolean; size: number; usedBytes: number; dbSize: number; bodyLimit: number }): object {
  const m = metrics.snapshot()
  return {
    status: status.status,
    agent_version: status.version,
    session: {
      legs: [{ region: status.embedded ? 'local' : status.relay, latency: status.latencyMs === undefined ? '' : `${Math.round(status.latencyMs)}ms` }],
    },
    uri: '/api/status',
    gw: {
      relay: status.relay,
      embedded: status.embedded,
      attempt: status.attempt,
      latency_ms: status.latencyMs ?? null,
      last_error: status.lastError ?? null,
      tunnels: status.tunnels.map((t) => ({
        name: t.name,
        public_name: t.publicName,
        public_url: t.publicUrl,
        public_urls: t.publicUrls,
        upstream: t.upstream,
        inspect: t.inspect,
      })),
      metrics: { conns: m.conns, http: m.http, bytes_in: m.bytes.in, bytes_out: m.bytes.out },
      capture: {
        enabled: capture.enabled,
        requests: capture.size,
        used_bytes: capture.usedBytes,
        db_size: capture.dbSize,
        body_limit: capture.bodyLimit,
      },
    },
  }
}

/**
 * ngrok's v3 endpoint (`/api/endpoints`, agent 3.30+): one entry per endpoint, its
 * preferred URL in `url`, the policy as a YAML string, and metrics in the detail.
 */
export function endpointJson(info: TunnelInfo, meta: TunnelMeta | undefined, metrics?: Metrics): object {
  return {
    name: info.name,
    uri: `/api/endpoints/${encodeURIComponent(info.name)}`,
    url: info.publicUrl,
    upstream: { url: info.upstream, protocol: info.upstreamProtocol },
    inspect: info.inspect,
    traffic_policy: meta?.trafficPolicy ?? '',
    pooling_enabled: meta?.pooling ?? false,
    ...(metrics ? { metrics: (({ conns, http }) => ({ conns, http }))(metrics.snapshot(info.name)) } : {}),
  }
}
