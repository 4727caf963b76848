/**
 * The policy engine's errors. Their codes are in the CLI's catalogue (src/errors.ts);
 * this is the policy's part of it.
 */
import { CodedError } from '@gw/protocol'
import { catalogueSlice } from '../errors.js'

export const PolicyErrorCodes = catalogueSlice(['GW_ERR_POLICY_INVALID', 'GW_ERR_POLICY_FILE', 'GW_ERR_POLICY_BODY_TOO_LARGE', 'GW_ERR_POLICY_IDP_UNREACHABLE', 'GW_ERR_POLICY_SOAP_FAULT', 'GW_ERR_POLICY_BAD_UPSTREAM_BODY', 'GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE', 'GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND', 'GW_ERR_POLICY_FORWARD_LOOP', 'GW_ERR_POLICY_HTTP_REQUEST_FAILED', 'GW_ERR_POLICY_ACTION_FAILED', 'GW_ERR_POLICY_WAF_BLOCKED', 'GW_ERR_POLICY_WAF_FAILED', 'GW_ERR_POLICY_TLS_HANDSHAKE'] as const)

export type PolicyErrorCode = keyof typeof PolicyErrorCodes

/** Where in the policy source a problem is: the file, 1-based line and column. */
export interface PolicyLocation {
  file: string | undefined
  line: number | undefined
  col: number | undefined
  /** The path in the document, e.g. `on_http_request[0].actions[1].config.status_code`. */
  path: string
}

/**
 * A policy that does not validate. `message` is complete for a human
 * (`policy.yml:12:9: on_http_request[0]…: what was wrong; allowed values: …`); the parts
 * are kept apart for tools (`gw policy check --json`).
 */
export class PolicyError extends CodedError {
  declare readonly code: PolicyErrorCode
  readonly location: PolicyLocation | undefined
  readonly reason: string
  readonly allowed: readonly string[] | undefined

  constructor(
    code: PolicyErrorCode,
    reason: string,
    location?: PolicyLocation,
    allowed?: readonly string[],
    options?: ErrorOptions,
  ) {
    super(code, PolicyErrorCodes[code].status, formatPolicyMessage(reason, location, allowed), options)
    this.name = 'PolicyError'
    this.location = location
    this.reason = reason
    this.allowed = allowed
  }
}

function formatPolicyMessage(reason: string, loc: PolicyLocation | undefined, allowed: readonly string[] | undefined): string {
  let prefix = ''
  if (loc) {
    if (loc.file !== undefined) prefix += loc.file
    if (loc.line !== undefined) prefix += `${prefix ? ':' : 'line '}${loc.line}:${loc.col ?? 1}`
    prefix += prefix ? `: ${loc.path}` : loc.path
  }
  const tail = allowed && allowed.length > 0 ? `; allowed values: ${allowed.join(', ')}` : ''
  return `${prefix ? `${prefix}: ` : ''}${reason}${tail}`
}

/** An error raised while a request runs through the policy; it ends the request with `status`. */
export class PolicyRuntimeError extends CodedError {
  declare readonly code: PolicyErrorCode

  constructor(code: PolicyErrorCode, message: string = PolicyErrorCodes[code].message, options?: ErrorOptions) {
    super(code, PolicyErrorCodes[code].status, message, options)
    this.name = 'PolicyRuntimeError'
  }
}
