/**
 * The local vault behind ngrok's `secrets.get('vault', 'name')`: `secrets.json` next to
 * the config file (the platform config directory, or beside GW_CONFIG / --config),
 * written by `gw secrets set|rm`. It is created readable by its owner only (0600, in a
 * 0700 directory when gw creates it), rewritten whole through a temporary file, and gw
 * never prints a value: `gw secrets list` shows names.
 *
 *   {"version": 1, "vaults": {"webhook-secrets": {"github-secret": "…"}}}
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { CliError } from '../errors.js'
import type { SecretStore } from '../policy/secrets.js'

export type Vaults = Record<string, Record<string, string>>

/** Vault and secret names: letters, digits, `-`, `_`, `.`; as ngrok's examples name them. */
export const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

export function secretsPath(configFile: string): string {
  return join(dirname(configFile), 'secrets.json')
}

export function readVaults(path: string): Vaults {
  if (!existsSync(path)) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new CliError('GW_ERR_SECRETS', `${path}: cannot read the secrets file: ${(err as Error).message}`)
  }
  const vaults = (parsed as { vaults?: unknown } | null)?.vaults
  if (typeof vaults !== 'object' || vaults === null || Array.isArray(vaults)) {
    throw new CliError('GW_ERR_SECRETS', `${path}: the secrets file must be {"version": 1, "vaults": {…}}`)
  }
  const out: Vaults = Object.create(null) as Vaults
  for (const [vault, secrets] of Object.entries(vaults)) {
    if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets)) {
      throw new CliError('GW_ERR_SECRETS', `${path}: vault ${JSON.stringify(vault)} must be a map of names to values`)
    }
    const names: Record<string, string> = Object.create(null) as Record<string, string>
    for (const [name, value] of Object.entries(secrets)) {
      if (typeof value !== 'string') throw new CliError('GW_ERR_SECRETS', `${path}: ${vault}/${name} must be a string`)
      names[name] = value
    }
    out[vault] = names
  }
  return out
}

export function writeVaults(path: string, vaults: Vaults): void {
  const dir = dirname(path)
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  try {
    writeFileSync(tmp, `${JSON.stringify({ version: 1, vaults }, null, 2)}\n`, { mode: 0o600 })
    // writeFileSync's mode applies only when it creates the file, and the umask applies to it.
    chmodSync(tmp, 0o600)
    renameSync(tmp, path)
  } catch (err) {
    throw new CliError('GW_ERR_SECRETS', `${path}: cannot write the secrets file: ${(err as Error).message}`)
  }
}

/** The vault a policy reads: the file as it is when the policy loads. */
export function loadSecretStore(configFile: string): SecretStore {
  const vaults = readVaults(secretsPath(configFile))
  return { get: (vault, name) => (Object.hasOwn(vaults, vault) && Object.hasOwn(vaults[vault]!, name) ? vaults[vault]![name] : undefined) }
}
