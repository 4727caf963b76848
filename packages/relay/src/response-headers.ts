/**
 * Response headers as the relay passes them to the public client: hop-by-hop headers
 * dropped (Node frames the body itself) and `gw-error-code` removed, so only gw, never
 * an upstream, can claim an error page.
 */
import { removeRawHeaders, stripHopByHop, ERROR_CODE_HEADER } from '@gw/protocol'

const SPOOFABLE = new Set([ERROR_CODE_HEADER])

export function responseHeaders(rawHeaders: string[], keepUpgrade = false): string[] {
  return removeRawHeaders(stripHopByHop(rawHeaders, keepUpgrade), SPOOFABLE)
}

/**
 * The agent's reason phrase, if a client may see it: visible ASCII only (RFC 9110 allows
 * obs-text, but Node refuses anything past Latin-1 and clients disagree on decoding it).
 * Anything else, CR and LF above all, is dropped for the status code's standard phrase.
 */
export function safeReason(reason: string | undefined): string | undefined {
  return reason !== undefined && REASON.test(reason) ? reason : undefined
}

const REASON = /^[\t\x20-\x7e]{0,512}$/
