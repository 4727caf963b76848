/**
 * The agent's YAML config file, in ngrok's v3 shape so an ngrok user finds their way:
 *
 *   version: 3
 *   agent: { authtoken, connect_url, relay_ca, web_addr }
 *   endpoints: [{ name, url, upstream: { url }, traffic_policy }]
 *
 * It lives in the platform's config directory (printed by `gw config check`), or where
 * GW_CONFIG or --config points.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { parseDocument, stringify } from 'yaml'
import { foldTunnels } from './v2-tunnels.js'
import type { AgentConfig } from './config-types.js'
import { CliError } from '../errors.js'

export type { AgentConfig, EndpointConfig } from './config-types.js'

export function defaultConfigDir(): string {
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'gw')
  if (process.platform === 'win32') return join(process.env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'gw')
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'gw')
}

export function configPath(explicit?: string): string {
  return explicit ?? process.env.GW_CONFIG ?? join(defaultConfigDir(), 'gw.yml')
}

export function loadConfig(path: string): AgentConfig {
  if (!existsSync(path)) return {}
  const text = readFileSync(path, 'utf8')
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const pos = e.linePos?.[0]
    throw new CliError('GW_ERR_CONFIG', `${path}${pos ? `:${pos.line}:${pos.col}` : ''}: ${e.message.split('\n')[0]}`)
  }
  const value = doc.toJS() as unknown
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new CliError('GW_ERR_CONFIG', `${path}: the config file must be a mapping (version, agent, endpoints), got ${Array.isArray(value) ? 'a list' : typeof value}`)
  }
  const config = value as AgentConfig
  if (config.version !== undefined && !['2', '3'].includes(String(config.version))) {
    throw new CliError('GW_ERR_CONFIG', `${path}: version ${JSON.stringify(config.version)} is not one gw reads; use version: 3 (ngrok's current shape) or 2`)
  }
  if (config.agent !== undefined && (typeof config.agent !== 'object' || config.agent === null)) {
    throw new CliError('GW_ERR_CONFIG', `${path}: "agent" must be a mapping`)
  }
  if (config.endpoints !== undefined && !Array.isArray(config.endpoints)) {
    throw new CliError('GW_ERR_CONFIG', `${path}: "endpoints" must be a list`)
  }
  return foldTunnels(config as AgentConfig & Record<string, unknown>, path)
}

/** How the file is written, for `gw config check`: `v3`, `v2`, or `v3 with tunnels:`. */
export function configShape(path: string): string {
  const raw = parseDocument(readFileSync(path, 'utf8')).toJS() as Record<string, unknown> | null
  if (raw === null || typeof raw !== 'object') return 'v3'
  if (String(raw.version ?? '') === '2') return 'ngrok v2 format'
  return raw.tunnels !== undefined ? 'with ngrok\'s older tunnels: list' : 'v3'
}

export function saveConfig(path: string, config: AgentConfig): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.tmp`
  // The file holds an authtoken: readable by its owner only.
  writeFileSync(tmp, stringify({ ...config, version: 3 }), { mode: 0o600 })
  renameSync(tmp, path)
}

/**
 * The agent's stable id, kept next to the config file. On an anonymous relay names
 * belong to it, so a restarted agent gets its name back.
 */
export function agentId(configFile: string): string {
  const file = join(dirname(configFile), 'agent-id')
  try {
    const id = readFileSync(file, 'utf8').trim()
    if (/^[0-9a-f]{32}$/.test(id)) return id
  } catch { /* made below */ }
  const id = randomBytes(16).toString('hex')
  try {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, id, { mode: 0o600 })
  } catch { /* a read-only home still gets a working, if forgetful, agent */ }
  return id
}
