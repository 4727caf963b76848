/**
 * Upstream pools for the agent: selection, passive ejection, health checks and retry.
 * See pool.ts for the contract the request handler follows.
 */
export { createUpstreamPool, STRATEGIES, UpstreamConfigError } from './pool.js'
export type { ReleaseResult, Strategy, UpstreamEvent, UpstreamPool, UpstreamPoolConfig, UpstreamTarget } from './pool.js'
export { isConnectionError, UpstreamPoolDownError } from './errors.js'
export { isIdempotentMethod, sendWithRetry, type SentRequest } from './retry.js'
export { parseTargetAddress, type ParsedTargetAddress } from './target.js'
export { createHealthChecker, probe, type HealthCheckConfig } from './health-check.js'
