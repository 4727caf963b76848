/**
 * What the policy engine and the ModSecurity worker (modsecurity-worker.ts) say to each
 * other: one evaluation per message, answered by id. Plain data, so it crosses
 * `postMessage` without a serialiser of our own.
 */

export interface WafTransaction {
  clientIp: string
  clientPort: number
  method: string
  /** Path and query as the client sent them. */
  uri: string
  httpVersion: string
  requestHeaders: Array<[string, string]>
  /** The first bytes of the request body, when `process_body` asked for it. */
  requestBody?: Uint8Array
  response?: {
    status: number
    headers: Array<[string, string]>
    body?: Uint8Array
  }
}

export interface WafRequest {
  id: number
  /** The rules text: the worker keeps one compiled rule set per distinct text. */
  rules: string
  transaction: WafTransaction
}

export interface MatchedRule {
  id: number
  message: string
  /** As CRS names it: CRITICAL, ERROR, WARNING, NOTICE. */
  severity: string
  data: string
}

export type WafAnswer =
  | { id: number; ok: true; blocked: boolean; status: number; anomalyScore: number; matchedRules: MatchedRule[] }
  | { id: number; ok: false; error: string }
