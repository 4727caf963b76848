/**
 * The gateway layer's error codes: the policy engine's and the upstream pools'. Each
 * package keeps its own table next to its code (nothing on the wire carries these), all
 * of them listed in docs/errors.md. Codes are never reused.
 */
import { CodedError } from '@gw/protocol'
export const PolicyErrorCodes = {
  GW_ERR_POLICY_INVALID: { status: 400, message: 'the traffic policy is not valid' },
  GW_ERR_POLICY_FILE: { status: 400, message: 'the traffic policy file could not be read or parsed' },
  GW_ERR_POLICY_EXPRESSION: { status: 500, message: 'a policy expression failed while evaluating a request' },
  GW_ERR_POLICY_BODY_TOO_LARGE: { status: 413, message: 'the request body exceeds the size a policy action may read' },
  GW_ERR_POLICY_UPSTREAM_UNKNOWN: { status: 500, message: 'a forward action names an upstream that does not exist' },
  GW_ERR_POLICY_IDP_UNREACHABLE: { status: 502, message: 'the identity provider (JWKS or OIDC discovery) could not be reached' },
  GW_ERR_POLICY_SOAP_FAULT: { status: 502, message: 'the SOAP service answered with a fault' },
  GW_ERR_POLICY_BAD_UPSTREAM_BODY: { status: 502, message: 'the upstream body could not be transformed' },
  GW_ERR_POLICY_ACTION_FAILED: { status: 500, message: 'a policy action failed while handling the request' },
} as const satisfies Record<string, { status: number; message: string }>

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
