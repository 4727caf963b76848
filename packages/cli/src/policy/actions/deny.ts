/** `deny`: refuse the request with `status_code` (default 403) and an empty body. */
import { respond, type ActionDefinition } from '../action.js'

export const deny: ActionDefinition = {
  type: 'deny',
  phases: ['on_http_request', 'on_http_response', 'on_tcp_connect'],
  compile(config) {
    const status = config.int('status_code', 403, 400, 599)
    config.done()
    return function denyRequest() {
      return respond(status, ['content-length', '0'])
    }
  },
}
