/**
 * Error codes of the inspector, the agent API and the TUI. They live here, not in
 * @gw/protocol's table, because nothing on the wire carries them: they only reach the
 * user of the local API (as JSON) or the terminal. The codes are stable like the others
 * and are listed in docs/inspect.md.
 */
import { CodedError } from '@gw/protocol'

export const InspectErrorCodes = {
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
  GW_ERR_REPLAY_BODY_TRUNCATED: { status: 409, message: 'the captured body was truncated, so the request cannot be replayed as it was' },
  GW_ERR_REPLAY_INVALID: { status: 400, message: 'the replay modifications are not a valid HTTP request' },
  GW_ERR_REPLAY_FAILED: { status: 502, message: 'the replayed request failed' },
  GW_ERR_INSPECT_DISABLED: { status: 409, message: 'request capture is off (--inspect=false)' },
} as const satisfies Record<string, { status: number; message: string }>

export type InspectErrorCode = keyof typeof InspectErrorCodes

export class InspectError extends CodedError {
  declare readonly code: InspectErrorCode

  constructor(code: InspectErrorCode, message: string = InspectErrorCodes[code].message, options?: ErrorOptions) {
    super(code, InspectErrorCodes[code].status, message, options)
    this.name = 'InspectError'
  }
}
