/**
 * Everything about the upstream: addresses, the undici Agent, the one call handler,
 * upgrades, pools with selection, ejection, health checks and retry, and what a failure
 * to reach it means. Nothing here knows about the relay, the agent's pipeline or the
 * policy engine.
 */
export { parseUpstream, loopbackAwareLookup, type Upstream } from './address.js'
export { parseTcpUpstream } from './tcp-address.js'
export { createUpstreamDispatcher, UPSTREAM_PROTOCOLS, type UpstreamClientOptions, type UpstreamProtocol } from './dispatcher.js'
export { Http2Upstream } from './http2-client.js'
export { callUpstream, UpstreamAnswer, UpstreamRequest, type UpstreamCall } from './call.js'
export { callUpgrade, type UpgradeCall, type UpgradeHandlers } from './upgrade.js'
export { describeUpstreamError, upstreamErrorCode } from './failure.js'
export { createUpstreamPool, STRATEGIES, UpstreamConfigError } from './pool.js'
export type { ReleaseResult, Strategy, UpstreamEvent, UpstreamPool, UpstreamPoolConfig, UpstreamTarget } from './pool.js'
export { isConnectionError, UpstreamPoolDownError } from './errors.js'
export { isIdempotentMethod, sendWithRetry, type SentRequest } from './retry.js'
export { parseTargetAddress, type ParsedTargetAddress } from './target.js'
export { createHealthChecker, probe, type HealthCheckConfig } from './health-check.js'
