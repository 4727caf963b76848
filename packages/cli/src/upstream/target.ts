/**
 * Upstream addresses as users write them: `3001`, `localhost:3001`, `127.0.0.1:3001`,
 * `http://localhost:3001`, `https://api.local:8443/v2`. A target is an origin plus an
 * optional base path that is prepended to the request target.
 */
export interface ParsedTargetAddress {
  /** `http://localhost:3001`, no trailing slash. */
  origin: string
  protocol: 'http:' | 'https:'
  hostname: string
  port: number
  /** '' or a path without a trailing slash, e.g. `/v2`. */
  basePath: string
}

/** Returns undefined when the text is not an upstream address. */
export function parseTargetAddress(text: string): ParsedTargetAddress | undefined {
  let input = text.trim()
  if (/^\d{1,5}$/.test(input)) input = `http://localhost:${input}`
  else if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) input = `http://${input}`
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return undefined
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined
  if (!url.hostname || url.username || url.password || url.search || url.hash) return undefined
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80
  if (!(port > 0 && port < 65536)) return undefined
  const basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '')
  return { origin: url.origin, protocol: url.protocol, hostname: url.hostname, port, basePath }
}
