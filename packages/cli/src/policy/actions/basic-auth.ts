/**
 * `basic-auth`: HTTP Basic authentication against a list of `user:password`
 * credentials. Answers 401 with `WWW-Authenticate: Basic realm=…`. Credentials are
 * compared as SHA-256 digests with `timingSafeEqual`, so neither the match position nor
 * the length leaks through timing. With `enforce: false` the result is only recorded.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { respond, type ActionDefinition } from '../action.js'
import { getHeader } from '../headers.js'
import { setActionResult } from '../state.js'

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

export const basicAuth: ActionDefinition = {
  type: 'basic-auth',
  phases: ['on_http_request'],
  compile(config) {
    const credentials = config.stringList('credentials', true, 1)
    credentials.forEach((c, i) => {
      const colon = c.indexOf(':')
      if (colon <= 0 || colon === c.length - 1) {
        throw config.errorAt([...config.path, 'credentials', i], 'must be "username:password" with a non-empty username and password')
      }
    })
    const realm = config.string('realm', 'gw')
    if (/["\\\r\n]/.test(realm)) config.fail('realm', 'must not contain quotes, backslashes or line breaks')
    const enforce = config.bool('enforce', true)
    config.done()
    const digests = credentials.map(digest)
    const challenge = ['www-authenticate', `Basic realm="${realm}", charset="UTF-8"`, 'content-type', 'text/plain; charset=utf-8']
    // Accepted Authorization values → username, so a client that keeps sending the same
    // valid header skips the hash. Only successes are kept, and the map is bounded.
    const accepted = new Map<string, string>()

    return function basicAuthCheck(state) {
      const header = getHeader(state.request!.rawHeaders, 'authorization')
      const known = header === undefined ? undefined : accepted.get(header)
      if (known !== undefined) {
        setActionResult(state, 'ngrok', 'basic_auth', { credentials: { presented: true, username: known, authorized: true } })
        return
      }
      let username = ''
      let authorized = false
      const presented = header !== undefined && /^basic /i.test(header)
      if (presented) {
        const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
        const colon = decoded.indexOf(':')
        username = colon === -1 ? decoded : decoded.slice(0, colon)
        const d = digest(decoded)
        // Check every entry so the time does not depend on which one matched.
        for (const candidate of digests) if (timingSafeEqual(candidate, d)) authorized = true
        if (authorized) {
          if (accepted.size >= 1000) accepted.clear()
          accepted.set(header, username)
        }
      }
      setActionResult(state, 'ngrok', 'basic_auth', { credentials: { presented, username, authorized } })
      if (!authorized && enforce) return respond(401, [...challenge], 'Unauthorized\n')
    }
  },
}
