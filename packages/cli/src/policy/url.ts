/** URL helpers shared by url-rewrite and redirect. */
import type { PolicyRequest } from './types.js'

export function fullUrl(req: PolicyRequest): string {
  return `${req.scheme}://${req.host}${req.target}`
}

/**
 * The path and query of an absolute or relative URL; undefined if it cannot be parsed.
 * `https:///p?q` (a rewrite whose `from` took in the authority, as ngrok's
 * `${req.url.authority}/products/…` example does) is the path `/p?q`.
 */
export function pathAndQuery(url: string): string | undefined {
  if (url.startsWith('/')) return url
  const emptyAuthority = /^[a-z][a-z0-9+.-]*:\/\/(\/.*)$/i.exec(url)
  if (emptyAuthority) return emptyAuthority[1]

  try {
    const u = new URL(url)
    return u.pathname + u.search
  } catch {
    return undefined
  }
}
