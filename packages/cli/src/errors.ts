/**
 * The error codes the CLI and the agent raise themselves, beside the wire codes of
 * @gw/protocol. A public client sees these in `gw-error-code` when the agent answers
 * in the upstream's place. Each has its status and message here and a row in
 * docs/errors.md; codes are never reused.
 */
import { CodedError } from '@gw/protocol'

export const AgentErrorCodes = {
  GW_ERR_REQUEST_TARGET_INVALID: { status: 400, message: 'the request target is malformed or ambiguous' },
  GW_ERR_UPSTREAM_POOL_DOWN: { status: 502, message: 'every target of the upstream pool is down or ejected' },
} as const satisfies Record<string, { status: number; message: string }>

export type AgentErrorCode = keyof typeof AgentErrorCodes

/** An error the agent answers a public request with (400 for a request it refuses…). */
export class AgentError extends CodedError {
  declare readonly code: AgentErrorCode

  constructor(code: AgentErrorCode, message: string = AgentErrorCodes[code].message, options?: ErrorOptions) {
    super(code, AgentErrorCodes[code].status, message, options)
    this.name = 'AgentError'
  }
}
