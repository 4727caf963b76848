/**
 * Per-request state: action results (`actions.ngrok.jwt_validation…`), `set-vars`
 * variables, the chosen upstream, and hooks that request-phase actions leave for the
 * response (soap turns the SOAP reply back into JSON, circuit-breaker counts errors).
 * The agent creates one per request with `createPolicyState()` and passes it to both
 * phases.
 */
import type { X509Certificate } from 'node:crypto'
import type { SecureContext } from 'node:tls'
import type { UpstreamTarget } from '../upstream/index.js'
import type { PolicyRequest, PolicyResponse } from './types.js'
import type { EvalRoot } from './variables.js'
import type { SseMessage } from './sse.js'

/** A request http-request sends to an internal endpoint of the agent. */
export interface InternalCall {
  method: string
  target: string
  rawHeaders: string[]
  body: Buffer
}

export interface InternalAnswer {
  status: number
  rawHeaders: string[]
  body: Buffer
}

export type ResponseHook = (state: PolicyState) => void | Promise<void>

export interface PolicyState {
  /** `vars.*` in expressions; set by `set-vars`. */
  readonly vars: Record<string, unknown>
  /** `actions.*` in expressions: `actions.ngrok.<action>` for ngrok's actions, `actions.gw.<action>` for ours. */
  readonly actions: Record<string, unknown>
  /** Set by the engine when a phase starts. */
  request: PolicyRequest | undefined
  response: PolicyResponse | undefined
  root: EvalRoot | undefined
  /** Set by `forward`. */
  upstream: UpstreamTarget | undefined
  /** Run in order at the start of `on_http_response`. */
  responseHooks: ResponseHook[] | undefined
  /**
   * Set by the agent: whether it has an internal endpoint with this host (`api.internal`,
   * or `api.internal:8080`), for forward-internal. Unset: it has none.
   */
  internalEndpoint: ((host: string) => boolean) | undefined
  /**
   * Set by the agent: send a request to its internal endpoint `host` through that
   * endpoint's policy and upstream (http-request's `*.internal` URLs). Rejects with a
   * coded error; undefined when the agent has no internal endpoints.
   */
  internalRequest: ((host: string, req: InternalCall, maxBody: number, signal: AbortSignal) => Promise<InternalAnswer>) | undefined
  /** The server-sent event message the on_event_stream_message phase is running on. */
  sseMessage: SseMessage | undefined
  /** Set by terminate-tls in on_tcp_connect: the agent ends the client's TLS with it before dialling. */
  terminateTls: TlsTermination | undefined
  /** The action and rule running now, for the verdict. */
  currentAction: string
  currentRule: string | undefined
}

/** terminate-tls's handshake: the certificate, versions and CAs in one context, and what a client certificate must be. */
export interface TlsTermination {
  secureContext: SecureContext
  /** `none`: not asked for (no CAs given); the others as ngrok's mutual_tls_verification_strategy. */
  clientCertificate: 'none' | 'require-and-verify' | 'require-any' | 'request'
  /** The CAs a client certificate must chain to (mutual_tls_certificate_authorities). */
  cas: X509Certificate[]
}

export function createPolicyState(): PolicyState {
  return {
    vars: Object.create(null) as Record<string, unknown>,
    actions: Object.create(null) as Record<string, unknown>,
    request: undefined,
    response: undefined,
    root: undefined,
    upstream: undefined,
    responseHooks: undefined,
    internalEndpoint: undefined,
    internalRequest: undefined,
    sseMessage: undefined,
    terminateTls: undefined,
    currentAction: '',
    currentRule: undefined,
  }
}

/** Record an action's result under `actions.<ns>.<name>` (ns is `ngrok` or `gw`). */
export function setActionResult(state: PolicyState, ns: 'ngrok' | 'gw', name: string, value: unknown): void {
  let group = state.actions[ns] as Record<string, unknown> | undefined
  if (!group) {
    group = Object.create(null) as Record<string, unknown>
    state.actions[ns] = group
  }
  group[name] = value
}

export function addResponseHook(state: PolicyState, hook: ResponseHook): void {
  ;(state.responseHooks ??= []).push(hook)
}
