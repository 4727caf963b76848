/**
 * What the agent API needs to start and stop tunnels (`POST /api/tunnels`, `POST
 * /api/endpoints`, `DELETE …/:name`), and the bodies it accepts, read into the config
 * file's endpoint shape so they are checked exactly as `gw start` checks a file:
 *
 * - `/api/tunnels` takes ngrok's v2 tunnel definition (`{name, addr, proto, subdomain,
 *   hostname, basic_auth, …}`), as the `ngrok` npm package and pyngrok (config v2) post;
 * - `/api/endpoints` takes ngrok's v3 endpoint (`{name, url, upstream: {url}, pooling_enabled,
 *   traffic_policy}`), as pyngrok (config v3) posts. `traffic_policy` may be a YAML or
 *   JSON string, as ngrok shows it, or an object.
 */
import { randomUUID } from 'node:crypto'
import { parse } from 'yaml'
import type { TunnelInfo } from '../agent/events.js'
import type { EndpointConfig } from '../config/config-file.js'
import { tunnelToEndpoint } from '../config/v2-tunnels.js'
import { InspectError } from '../inspect/errors.js'

export interface TunnelMeta {
  /** The traffic policy as YAML, '' when it has none (ngrok's `traffic_policy` string). */
  trafficPolicy: string
  pooling: boolean
  /** Started through the API, so the API may stop it. */
  dynamic: boolean
}

export interface TunnelControl {
  meta(name: string): TunnelMeta | undefined
  start(endpoint: EndpointConfig, where: string): Promise<TunnelInfo>
  stop(name: string): Promise<void>
}

const ENDPOINT_KEYS = new Set(['name', 'url', 'upstream', 'pooling_enabled', 'traffic_policy', 'inspect', 'bindings', 'description', 'metadata', 'uri'])

function invalid(message: string): never {
  throw new InspectError('GW_ERR_API_TUNNEL_INVALID', message)
}

function nameOf(body: Record<string, unknown>, where: string): string {
  const name = body.name ?? randomUUID()
  if (typeof name !== 'string' || name === '' || name.length > 200 || /[/\u0000-\u001f]/.test(name)) {
    invalid(`${where}: name must be a non-empty string without "/" (got ${JSON.stringify(name)})`)
  }
  return name
}

/** A v2 tunnel body: ngrok names it in the body; a random uuid when left out, as the ngrok npm package does. */
export function tunnelBody(body: Record<string, unknown>): EndpointConfig {
  const where = 'POST /api/tunnels'
  const { name: _name, ...tunnel } = body
  const name = nameOf(body, where)
  // ngrok's v2 API takes addr as a number or a string ("8080", "localhost:8080").
  try {
    return tunnelToEndpoint(name, tunnel, where)
  } catch (err) {
    invalid((err as Error).message)
  }
}

/** A v3 endpoint body. */
export function endpointBody(body: Record<string, unknown>, where: string, pathName?: string): EndpointConfig {
  const unknown = Object.keys(body).filter((k) => !ENDPOINT_KEYS.has(k))
  if (unknown.length > 0) invalid(`${where}: gw does not support ${unknown.join(', ')} in an endpoint`)
  const name = pathName ?? nameOf(body, where)
  if (pathName !== undefined && body.name !== undefined && body.name !== pathName) {
    invalid(`${where}: the body names ${JSON.stringify(body.name)} but the path names ${JSON.stringify(pathName)}`)
  }
  const upstream = body.upstream
  if (typeof upstream !== 'object' || upstream === null || Array.isArray(upstream)) invalid(`${where}: needs upstream: {url: <port, host:port or URL>}`)
  const { url, protocol, ...rest } = upstream as Record<string, unknown>
  if (Object.keys(rest).length > 0) invalid(`${where}: gw does not support upstream.${Object.keys(rest).join(', upstream.')}`)
  if (typeof url !== 'string' && typeof url !== 'number') invalid(`${where}: upstream.url must be a port, host:port or URL`)
  let policy = body.traffic_policy
  if (typeof policy === 'string') {
    try {
      policy = policy.trim() === '' ? undefined : parse(policy)
    } catch (err) {
      invalid(`${where}: traffic_policy is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`)
    }
  }
  if (body.url !== undefined && typeof body.url !== 'string') invalid(`${where}: url must be a string`)
  if (body.pooling_enabled !== undefined && typeof body.pooling_enabled !== 'boolean') invalid(`${where}: pooling_enabled must be true or false`)
  if (body.inspect !== undefined && typeof body.inspect !== 'boolean') invalid(`${where}: inspect must be true or false`)
  if (body.bindings !== undefined && !(Array.isArray(body.bindings) && body.bindings.every((b) => typeof b === 'string'))) invalid(`${where}: bindings must be a list of strings`)
  return {
    name,
    upstream: { url, ...(protocol !== undefined ? { protocol: String(protocol) } : {}) },
    ...(body.url !== undefined ? { url: body.url as string } : {}),
    ...(body.pooling_enabled !== undefined ? { pooling_enabled: body.pooling_enabled as boolean } : {}),
    ...(body.inspect !== undefined ? { inspect: body.inspect as boolean } : {}),
    ...(body.bindings !== undefined ? { bindings: body.bindings as string[] } : {}),
    ...(policy !== undefined && policy !== null ? { traffic_policy: policy } : {}),
  }
}
