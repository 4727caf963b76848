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
