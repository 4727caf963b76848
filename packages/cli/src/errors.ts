/**
 * The CLI's one error catalogue: every code the agent, the traffic-policy engine, the
 * upstream pools, the inspector and the agent API raise themselves. The wire codes,
 * which the relay and the agent exchange, are @gw/protocol's table; nothing else
 * defines a code. Each code has its status (what a public client or an API caller
 * gets when it ends a request), its one-line meaning, and a row in docs/errors.md
 * (test/docs/errors-table.test.ts checks both ways, and that every code is raised
 * somewhere). Codes are never reused.
 */
import { CodedError } from '@gw/protocol'

export const CliErrorCodes = {
  // The command line, the config file and reaching the relay.
  GW_ERR_INVALID_FLAG: { status: 400, message: 'a flag or config value is not valid' },
  GW_ERR_CONFIG: { status: 400, message: 'the config file could not be read' },
  GW_ERR_SECRETS: { status: 400, message: 'the secrets file could not be read or written, or a secret name is not valid' },
  GW_ERR_INVALID_UPSTREAM: { status: 400, message: 'the upstream address is not valid' },
  GW_ERR_RELAY_UNREACHABLE: { status: 502, message: 'the agent could not connect to the relay' },
  GW_ERR_RELAY_CERT_UNTRUSTED: { status: 502, message: 'the relay certificate is not trusted' },
  GW_ERR_RELAY_NO_TERMINATE_TLS: { status: 502, message: "the relay does not run an https endpoint's terminate-tls (mutual TLS, TLS versions): it is older than gw's support for it" },

  // The agent's answers to public requests it refuses or cannot serve.
  GW_ERR_REQUEST_TARGET_INVALID: { status: 400, message: 'the request target is malformed or ambiguous' },
  GW_ERR_UPSTREAM_POOL_DOWN: { status: 502, message: 'every target of the upstream pool is down or ejected' },

  // The traffic policy: loading it, and running it on a request.
  GW_ERR_POLICY_INVALID: { status: 400, message: 'the traffic policy is not valid' },
  GW_ERR_POLICY_FILE: { status: 400, message: 'the traffic policy file could not be read or parsed' },
  GW_ERR_POLICY_BODY_TOO_LARGE: { status: 413, message: 'the request body exceeds the size a policy action may read' },
  GW_ERR_POLICY_IDP_UNREACHABLE: { status: 502, message: 'the identity provider (JWKS or OIDC discovery) could not be reached' },
  GW_ERR_POLICY_SOAP_FAULT: { status: 502, message: 'the SOAP service answered with a fault' },
  GW_ERR_POLICY_BAD_UPSTREAM_BODY: { status: 502, message: 'the upstream body could not be transformed' },
  GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND: { status: 502, message: 'forward-internal names no internal endpoint of this agent' },
  GW_ERR_POLICY_HTTP_REQUEST_FAILED: { status: 502, message: 'the http-request action\'s call failed (on_error: halt)' },
  GW_ERR_POLICY_FORWARD_LOOP: { status: 508, message: 'forward-internal or http-request went from endpoint to endpoint too many times (a loop)' },
  GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE: { status: 502, message: 'the upstream response body exceeds the size a policy action may read' },
  GW_ERR_POLICY_ACTION_FAILED: { status: 500, message: 'a policy action failed while handling the request' },
  GW_ERR_POLICY_WAF_BLOCKED: { status: 403, message: 'the OWASP Core Rule Set (owasp-crs-request or owasp-crs-response) scored the request or response over its threshold' },
  GW_ERR_POLICY_WAF_FAILED: { status: 500, message: 'the OWASP Core Rule Set could not be run on the request or response (on_error: halt)' },
  GW_ERR_POLICY_TLS_HANDSHAKE: { status: 400, message: 'terminate-tls: the client\'s TLS handshake failed (a version out of range, or a missing or untrusted client certificate)' },

  // The inspector, the agent API and the TUI (docs/inspect.md).
  GW_ERR_API_FORBIDDEN_HOST: { status: 403, message: 'the agent API answers only Host 127.0.0.1, localhost or [::1]' },
  GW_ERR_API_FORBIDDEN_ORIGIN: { status: 403, message: 'the agent API refuses requests made from other web origins' },
  GW_ERR_API_NOT_FOUND: { status: 404, message: 'no such agent API resource' },
  GW_ERR_API_METHOD_NOT_ALLOWED: { status: 405, message: 'this method is not allowed on this agent API resource' },
  GW_ERR_API_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'calls that change state need Content-Type: application/json' },
  GW_ERR_API_BAD_REQUEST: { status: 400, message: 'the request body is not valid' },
  GW_ERR_API_BODY_TOO_LARGE: { status: 413, message: 'the request body exceeds the agent API limit' },
  GW_ERR_API_LISTEN: { status: 500, message: 'the agent API could not listen on its address' },
  GW_ERR_API_INTERNAL: { status: 500, message: 'the agent API failed while answering; this is a bug in gw' },
  GW_ERR_REQUEST_NOT_FOUND: { status: 404, message: 'no captured request has this id' },
  GW_ERR_TUNNEL_UNKNOWN: { status: 404, message: 'no tunnel has this name' },
  GW_ERR_API_TUNNEL_EXISTS: { status: 409, message: 'a tunnel with this name is already running' },
  GW_ERR_API_TUNNEL_NOT_STOPPABLE: { status: 409, message: 'the tunnel was started with gw itself, not through the API, so only stopping gw stops it' },
  GW_ERR_API_TUNNEL_INVALID: { status: 400, message: 'the tunnel definition is not one gw can start' },
  GW_ERR_REPLAY_BODY_TRUNCATED: { status: 409, message: 'the captured body was truncated, so the request cannot be replayed as it was' },
  GW_ERR_REPLAY_INVALID: { status: 400, message: 'the replay modifications are not a valid HTTP request' },
  GW_ERR_REPLAY_FAILED: { status: 502, message: 'the replayed request failed' },
  GW_ERR_INSPECT_DISABLED: { status: 409, message: 'request capture is off (--inspect=false)' },
} as const satisfies Record<string, { status: number; message: string }>

export type CliErrorCode = keyof typeof CliErrorCodes

export function isCliErrorCode(value: unknown): value is CliErrorCode {
  return typeof value === 'string' && Object.hasOwn(CliErrorCodes, value)
}

/** A part of the catalogue, for a component that raises only those codes. */
export function catalogueSlice<K extends CliErrorCode>(codes: readonly K[]): { readonly [C in K]: (typeof CliErrorCodes)[C] } {
  const out = {} as { [C in K]: (typeof CliErrorCodes)[C] }
  for (const code of codes) out[code] = CliErrorCodes[code]
  return out
}

/** An error with any code of the CLI's catalogue: a bad flag, config file or upstream, an unreachable relay. */
export class CliError extends CodedError {
  declare readonly code: CliErrorCode

  constructor(code: CliErrorCode, message: string = CliErrorCodes[code].message, options?: ErrorOptions) {
    super(code, CliErrorCodes[code].status, message, options)
    this.name = 'CliError'
  }
}

/** An error the agent answers a public request with (400 for a target it refuses…). */
export class AgentError extends CodedError {
  declare readonly code: AgentErrorCode

  constructor(code: AgentErrorCode, message: string = CliErrorCodes[code].message, options?: ErrorOptions) {
    super(code, CliErrorCodes[code].status, message, options)
    this.name = 'AgentError'
  }
}

export const AgentErrorCodes = catalogueSlice(['GW_ERR_REQUEST_TARGET_INVALID', 'GW_ERR_UPSTREAM_POOL_DOWN'] as const)
export type AgentErrorCode = keyof typeof AgentErrorCodes
