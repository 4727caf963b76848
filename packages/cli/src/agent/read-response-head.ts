/**
 * The agent reading another gw side's answer as the relay reads an agent's: the next
 * message must be a RESPONSE_HEAD, checked as the relay checks one. Used where the agent
 * is itself the reader: an upgrade to another agent's internal endpoint (upgrade.ts), a
 * call to it (remote-internal.ts), and a request to one of its own (internal-request.ts).
 * What a head's `error` means differs between them, so it is left to the caller.
 */
import { checkResponseHead, decodeJson, MessageType, type MessageReader, type ResponseHead } from '@gw/protocol'

export type ResponseHeadCallback = (...args: [err: Error, response: undefined] | [err: null, response: ResponseHead]) => void

/**
 * Calls back once: with the checked head, or with the reader's error, the decoding's,
 * or `ended()` when the stream ended (or sent another message) before a response head.
 * `ended` is called only then, so no Error is made for an answer that came.
 */
export function readResponseHead(reader: MessageReader, ended: () => Error, callback: ResponseHeadCallback): void {
  reader.nextMessage((err, message) => {
    if (err || !message || message.type !== MessageType.RESPONSE_HEAD) return callback(err ?? ended(), undefined)
    let response: ResponseHead
    try {
      response = checkResponseHead(decodeJson(message.payload, 'response head'))
    } catch (e) {
      return callback(e as Error, undefined)
    }
    callback(null, response)
  })
}
