/** URL helpers shared by url-rewrite and redirect. */
import type { PolicyRequest } from './types.js'

export function fullUrl(req: PolicyRequest): string {
  return `${req.scheme}://${req.host}${req.target}`
}

/** The path and query of an absolute or relative URL; undefined if it cannot be parsed. */
export function pathAndQuery(url: string): string | undefined {
  if (url.startsWith('/')) return url
  try {
    const u = new URL(url)
    return u.pathname + u.search
  } catch {
    return undefined
  }
}
