/**
 * The Host header decides which tenant gets a request, so the relay takes only one it
 * can read one way: exactly one Host (required in HTTP/1.1, RFC 9112 §3.2), a DNS name
 * or an IP literal, and at most a numeric port. Anything else is a 400 rather than a
 * guess; a front proxy and the relay must never disagree about whose request it is.
 * (An absolute-form target naming another host is the agent's to refuse, with
 * GW_ERR_REQUEST_TARGET_INVALID, where the target is normalised.)
 */
import type { IncomingMessage } from 'node:http'

const HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i

/** Why the request's Host cannot be used, or undefined when it can. */
export function hostProblem(req: IncomingMessage): string | undefined {
  let count = 0
  let value: string | undefined
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') {
      count++
      value = raw[i + 1]
    }
  }
  if (count > 1) return 'the request has more than one Host header'
  if (value === undefined || value === '') {
    return req.httpVersion === '1.0' ? undefined : 'the request has no Host header (HTTP/1.1 requires one)'
  }
  if (value.length > 255 || !HOST.test(value)) return `the Host header ${JSON.stringify(value.slice(0, 64))} is not a host name with an optional port`
  const port = /:(\d+)$/.exec(value)
  if (port && !value.endsWith(']') && Number(port[1]) > 65535) return `the Host header's port ${port[1]} is out of range`
  return undefined
}
