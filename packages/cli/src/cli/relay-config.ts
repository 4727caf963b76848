/**
 * `gw relay --config relay.yml`: the file's settings under the flags. A flag given on
 * the command line wins over the file; a flag left at its default does not.
 */
import type { RelayFileConfig, RelayOptions } from '@gw/relay'
import { CliError } from '../errors.js'

/** Options that have a flag with a default value, and that flag's name. */
const DEFAULTED_FLAG: Partial<Record<keyof RelayOptions, string>> = {
  host: 'host',
  httpPort: 'http-port',
  httpsPort: 'https-port',
  allowAnonymous: 'allow-anonymous',
  maxHeaderSize: 'max-header-size',
  tcpMaxConnections: 'tcp-max-connections',
}

export function withConfigFile(
  fromFlags: Omit<RelayOptions, 'domain'> & { domain?: string | undefined },
  file: RelayFileConfig | undefined,
  setFromDefault: (flag: string) => boolean,
): RelayOptions {
  const merged: Record<string, unknown> = file ? { ...file.settings, tokens: file.tokens, limits: file.limits } : {}
  for (const [key, value] of Object.entries(fromFlags)) {
    if (value === undefined) continue
    const flag = DEFAULTED_FLAG[key as keyof RelayOptions]
    if (file && flag && setFromDefault(flag) && (file.settings as Record<string, unknown>)[key] !== undefined) continue
    merged[key] = value
  }
  if (typeof merged.domain !== 'string' || merged.domain === '') {
    throw new CliError('GW_ERR_INVALID_FLAG', 'the relay needs a domain: give --domain tunnel.example.com, GW_RELAY_DOMAIN, or domain: in the --config file')
  }
  return merged as unknown as RelayOptions
}
