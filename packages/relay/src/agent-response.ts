/**
 * What an agent answers is untrusted input: any tenant runs an agent, and a response head
 * the relay passed on unchecked could corrupt the public client's connection. With HTTP/1.1
 * pipelining, a body longer than its Content-Length, a second Content-Length or a 1xx as a
 * final status puts the agent's extra bytes where the client expects the *next* response,
 * which may be another tenant's. So every head is checked here before a byte of it is
 * written, and the body is counted against its Content-Length (see `BodyLength`).
 *
 * The grammar is RFC 9110/9112's: header names are tokens, values are field-content
 * (HTAB, SP, VCHAR, obs-text, which Node writes as Latin-1), a reason phrase is the same
 * minus obs-text here (it only decorates the status, so a dubious one is dropped, as nginx
 * does, rather than refused). Content-Length is exactly one run of digits.
 */
import { GwError, type ResponseHead } from '@gw/protocol'
import { responseHeaders } from './response-headers.js'

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
const REASON = /^[\t\x20-\x7e]{0,512}$/
const DIGITS = /^\d{1,15}$/

/** Header names an agent may not send as trailers: they frame or route the message. */
const FORBIDDEN_TRAILERS = new Set([
  'content-length', 'transfer-encoding', 'content-encoding', 'content-type', 'content-range', 'trailer', 'host',
  'connection', 'keep-alive', 'upgrade', 'te', 'cache-control', 'expires', 'date', 'authorization', 'set-cookie',
])

export interface CheckedResponse {
  status: number
  /** undefined: Node writes the standard phrase for the status. */
  statusMessage: string | undefined
  /** The headers to write, hop-by-hop and spoofable ones already removed. */
  headers: string[]
  /** The declared body length, or undefined when the body is framed by chunked encoding. */
  contentLength: number | undefined
}

function bad(message: string): never {
  throw new GwError('GW_ERR_AGENT_BAD_RESPONSE', message)
}

/**
 * Check a response head from the agent. `upgrade` allows 101 (and only then). Throws
 * GW_ERR_AGENT_BAD_RESPONSE with what was wrong.
 */
export function checkAgentResponse(head: ResponseHead, upgrade: boolean): CheckedResponse {
  const { status } = head
  if (status < 200 && !(upgrade && status === 101)) {
    bad(`the agent answered ${status}, which is not a final status${upgrade ? '' : ' (101 only answers an upgrade)'}`)
  }
  let contentLength: number | undefined
  const raw = head.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    if (!TOKEN.test(name)) bad(`the agent sent a header name that is not a token: ${JSON.stringify(name.slice(0, 64))}`)
    if (!FIELD_VALUE.test(value)) bad(`the agent sent a header value with a forbidden character in ${name}`)
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      if (contentLength !== undefined) bad('the agent sent more than one Content-Length')
      if (!DIGITS.test(value)) bad(`the agent sent Content-Length ${JSON.stringify(value.slice(0, 32))}, not a number of bytes`)
      contentLength = Number(value)
    }
  }
  const statusMessage = head.statusMessage !== undefined && head.statusMessage !== '' && REASON.test(head.statusMessage)
    ? head.statusMessage
    : undefined
  return { status, statusMessage, headers: responseHeaders(raw, status === 101), contentLength }
}

/** Trailers from the agent, minus any that are not valid or not allowed as trailers. */
export function checkAgentTrailers(raw: string[]): [string, string][] {
  const pairs: [string, string][] = []
  for (const [name, value] of pairsOf(responseHeaders(raw))) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value) || FORBIDDEN_TRAILERS.has(name.toLowerCase())) continue
    pairs.push([name, value])
  }
  return pairs
}

function pairsOf(raw: string[]): [string, string][] {
  const pairs: [string, string][] = []
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!])
  return pairs
}

/** Whether a response to `method` with `status` carries a body at all (RFC 9110 §6.4.1). */
export function responseHasBody(method: string | undefined, status: number): boolean {
  return method !== 'HEAD' && status !== 204 && status !== 304 && !(status >= 100 && status < 200)
}
