/**
 * The traffic-policy engine: ngrok's policy format (phases, rules, CEL expressions,
 * actions) compiled once and run per request by the agent.
 *
 * @example
 * const policy = loadPolicyFile('policy.yml')           // throws PolicyError with file:line:col
 * const state = createPolicyState()
 * const outcome = await policy.onHttpRequest(req, state)
 * if (outcome.kind === 'respond') return send(outcome.response)       // 401, 429, redirect…
 * const res = await callUpstream(outcome.upstream ?? defaultUpstream, req)
 * return send(await policy.onHttpResponse(req, res, state))
 */
export type { PolicyRequest, PolicyResponse, PolicyVerdict, RequestOutcome, Phase, PolicyEvents, PolicyLogEntry, EndpointKind, TcpVerdict } from './types.js'
export { isIdentityHeader, IDENTITY_HEADER_PREFIX } from './identity-headers.js'
export { compilePolicy, terminalToResponse, PHASES, TCP_PHASES, policyKind, type CompiledPolicy, type CompilePolicyOptions } from './engine.js'
export { loadPolicyFile, readPolicyFile, checkPolicyFile } from './load.js'
export { parsePolicyText, formatPath, NO_SOURCE, type PolicySource, type ParsedPolicyText } from './source.js'
export { createPolicyState, setActionResult, type InternalAnswer, type InternalCall, type PolicyState, type TlsTermination } from './state.js'
export { PolicyError, PolicyRuntimeError, PolicyErrorCodes, type PolicyErrorCode, type PolicyLocation } from './errors.js'
export { ACTIONS } from './actions/index.js'
export { terminateTlsResult } from './variables.js'
export { NO_SECRETS, type SecretStore } from './secrets.js'
export { shorthandsToPolicy, type PolicyShorthands } from './shorthands.js'
export type { UpstreamTarget, UpstreamPool } from '../upstream/index.js'
