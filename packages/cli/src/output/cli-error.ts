/**
 * Turns any failure into one clear message and a non-zero exit: what was wrong, the
 * value it got, and what to do, with the stable code. CodedErrors carry all of that; other
 * errors are bugs and keep their stack under DEBUG.
 */
import { Errors } from '@oclif/core'
import { CodedError } from '@gw/protocol'

/** Exit codes: 1 for a failure at run time, 2 for bad input (usage). */
const USAGE_CODES = new Set(['GW_ERR_INVALID_UPSTREAM', 'GW_ERR_INVALID_FLAG', 'GW_ERR_CONFIG', 'GW_ERR_RELAY_OPTION_INVALID', 'GW_ERR_RELAY_TOKENS_FILE', 'GW_ERR_NAME_INVALID', 'GW_ERR_NAME_RESERVED', 'GW_ERR_DOMAIN_NOT_SERVED'])

export function toCliError(err: unknown): Errors.CLIError {
  if (err instanceof Errors.CLIError) return err
  if (err instanceof CodedError) {
    return new Errors.CLIError(err.message, { code: err.code, exit: USAGE_CODES.has(err.code) || err.code.startsWith('GW_ERR_POLICY_') ? 2 : 1 })
  }
  const e = err as Error
  return new Errors.CLIError(process.env.DEBUG ? (e.stack ?? String(e)) : e.message || String(e), { exit: 1 })
}
