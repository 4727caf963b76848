/**
 * `close-connection`: end the client's connection without an answer, as ngrok does
 * (the client sees the connection close: curl's "Empty reply from server"). The agent
 * tells the relay in the response head (`close: true`), and the relay closes the
 * client's connection instead of writing a response. A relay too old to know the field
 * writes the head's 444 (nginx's "connection closed without response"), so the
 * request still never reaches the upstream. On a tcp or tls endpoint (on_tcp_connect) the
 * connection is closed before the upstream is dialled. It has no configuration.
 */
import type { ActionDefinition } from '../action.js'

export const closeConnection: ActionDefinition = {
  type: 'close-connection',
  // In on_tcp_connect (tcp and tls endpoints) any terminating action closes the connection; this one says so.
  phases: ['on_http_request', 'on_tcp_connect'],
  compile(config) {
    config.done()
    return function closeConnectionAction() {
      return { kind: 'respond', status: 444, headers: [], body: '', close: true }
    }
  },
}
