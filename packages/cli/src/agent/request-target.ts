/**
 * The request target, normalised once before anything looks at it, so the policy's
 * rules and the upstream's router see the same path (the request-smuggling class of
 * "the proxy checked one path, the app served another").
 *
 * - absolute form (`GET http://host/admin HTTP/1.1`) becomes origin form (`/admin`),
 *   and is refused when its authority is not the Host the request was routed by;
 * - dot segments are removed (RFC 3986 §5.2.4), so `/x/../admin` is `/admin`;
 * - runs of slashes collapse, so `//admin` is `/admin` (nginx's merge_slashes);
 * - paths whose meaning depends on who decodes them are refused with 400
 *   `GW_ERR_REQUEST_TARGET_INVALID`: an encoded slash, backslash or dot segment
 *   (`%2F`, `%5C`, `/%2e%2e/`), a raw backslash, control bytes, a fragment, broken
 *   percent-encoding.
 *
 * The query is left exactly as sent. A target that needs none of this (almost all of
 * them) is returned as it is after one regular-expression test.
 */
import { AgentError } from '../errors.js'

/** Anything in a path that could need work: `//`, a dot segment, `%`, `\`, `#`, control bytes. */
const SUSPECT = /\/\/|\/\.\.?(?:\/|$)|[%\\#\x00-\x20\x7f]/
const ENCODED_SEPARATOR = /%(?:2f|5c)/i
const PERCENT = /%(?![0-9a-f]{2})/i
const ENCODED_CONTROL = /%(?:[01][0-9a-f]|7f)/i

function refuse(target: string, why: string): never {
  throw new AgentError('GW_ERR_REQUEST_TARGET_INVALID', `the request target ${JSON.stringify(target.slice(0, 200))} ${why}`)
}

/** The normalised origin-form target; throws AgentError(GW_ERR_REQUEST_TARGET_INVALID). */
export function normaliseTarget(target: string, host: string): string {
  let t = target
  if (t[0] !== '/') {
    const m = /^https?:\/\/([^/?#]*)/i.exec(t)
    if (!m) refuse(target, 'is neither a path (/…) nor an absolute http URL')
    if (m[1]!.toLowerCase() !== host.toLowerCase()) refuse(target, `names host ${JSON.stringify(m[1])}, but the request was sent to ${JSON.stringify(host)}`)
    t = t.slice(m[0].length)
    if (t === '' || t[0] === '?') t = `/${t}`
    if (t[0] !== '/') refuse(target, 'has no path')
  }
  const q = t.indexOf('?')
  const path = q === -1 ? t : t.slice(0, q)
  if (!SUSPECT.test(path)) return t
  if (/[\\#\x00-\x20\x7f]/.test(path)) refuse(target, 'holds a backslash, a fragment, a space or a control byte')
  if (PERCENT.test(path)) refuse(target, 'has a % that does not start a %XX escape')
  if (ENCODED_SEPARATOR.test(path)) refuse(target, 'holds an encoded slash or backslash (%2F, %5C), which servers decode differently')
  if (ENCODED_CONTROL.test(path)) refuse(target, 'holds an encoded control byte')
  const out: string[] = []
  for (const segment of path.split('/').slice(1)) {
    if (segment === '' ) continue
    if (segment === '.') continue
    if (segment === '..') {
      out.pop()
      continue
    }
    if (segment.includes('%')) {
      // A segment that decodes to a dot segment would be one for the upstream but not for us.
      const decoded = segment.replace(/%2e/gi, '.')
      if (decoded === '.' || decoded === '..') refuse(target, 'holds an encoded dot segment (%2E)')
    }
    out.push(segment)
  }
  // A trailing slash or dot segment keeps the path a "directory": /a/b/ and /a/b/.. → /a/.
  const last = path.slice(path.lastIndexOf('/') + 1)
  const trailing = path.length > 1 && (last === '' || last === '.' || last === '..')
  const normalised = `/${out.join('/')}${trailing && out.length > 0 ? '/' : ''}`
  return q === -1 ? normalised : normalised + t.slice(q)
}
