/**
 * Errors of the inspector, the agent API and the TUI. Their codes are in the CLI's
 * catalogue (src/errors.ts) and listed in docs/inspect.md as well as docs/errors.md.
 */
import { CodedError } from '@gw/protocol'
import { catalogueSlice } from '../errors.js'

export const InspectErrorCodes = catalogueSlice(['GW_ERR_API_FORBIDDEN_HOST', 'GW_ERR_API_FORBIDDEN_ORIGIN', 'GW_ERR_API_NOT_FOUND', 'GW_ERR_API_METHOD_NOT_ALLOWED', 'GW_ERR_API_UNSUPPORTED_MEDIA_TYPE', 'GW_ERR_API_BAD_REQUEST', 'GW_ERR_API_BODY_TOO_LARGE', 'GW_ERR_API_LISTEN', 'GW_ERR_API_INTERNAL', 'GW_ERR_REQUEST_NOT_FOUND', 'GW_ERR_TUNNEL_UNKNOWN', 'GW_ERR_API_TUNNEL_EXISTS', 'GW_ERR_API_TUNNEL_NOT_STOPPABLE', 'GW_ERR_API_TUNNEL_INVALID', 'GW_ERR_REPLAY_BODY_TRUNCATED', 'GW_ERR_REPLAY_INVALID', 'GW_ERR_REPLAY_FAILED', 'GW_ERR_INSPECT_DISABLED'] as const)

export type InspectErrorCode = keyof typeof InspectErrorCodes

export class InspectError extends CodedError {
  declare readonly code: InspectErrorCode

  constructor(code: InspectErrorCode, message: string = InspectErrorCodes[code].message, options?: ErrorOptions) {
    super(code, InspectErrorCodes[code].status, message, options)
    this.name = 'InspectError'
  }
}
