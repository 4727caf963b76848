/**
 * Encrypted, authenticated cookie values (AES-256-GCM), for the OIDC session and the
 * login transaction. The key comes from a configured secret (so sessions survive a
 * restart) or is random per process (so a forgotten secret fails safe: everyone logs in
 * again). The cookie name is bound in as additional data, so a transaction cookie cannot
 * be replayed as a session cookie.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'

export interface CookieSealer {
  seal(name: string, value: unknown): string
  open<T>(name: string, sealed: string): T | undefined
}

export function createCookieSealer(secret: string | undefined): CookieSealer {
  const key = secret === undefined ? randomBytes(32) : createHash('sha256').update(`gw-cookie:${secret}`).digest()
  return {
    seal(name, value) {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      cipher.setAAD(Buffer.from(name))
      const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')
    },
    open<T>(name: string, sealed: string): T | undefined {
      try {
        const raw = Buffer.from(sealed, 'base64url')
        if (raw.length < 29) return undefined
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
        decipher.setAAD(Buffer.from(name))
        decipher.setAuthTag(raw.subarray(12, 28))
        const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')
        return JSON.parse(text) as T
      } catch {
        return undefined
      }
    },
  }
}

export function readCookie(rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'cookie') continue
    for (const part of rawHeaders[i + 1]!.split(';')) {
      const eq = part.indexOf('=')
      if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
    }
  }
  return undefined
}

/** Remove one cookie from the Cookie headers, so gw's own cookies never reach the upstream. */
export function stripCookie(rawHeaders: string[], name: string): void {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'cookie') continue
    const kept = rawHeaders[i + 1]!.split(';').filter((p) => p.slice(0, p.indexOf('=')).trim() !== name)
    rawHeaders[i + 1] = kept.map((p) => p.trim()).join('; ')
  }
  for (let i = rawHeaders.length - 2; i >= 0; i -= 2) {
    if (rawHeaders[i]!.toLowerCase() === 'cookie' && rawHeaders[i + 1] === '') rawHeaders.splice(i, 2)
  }
}

export function serializeCookie(name: string, value: string, opts: { maxAgeS?: number; domain?: string; secure: boolean; path?: string }): string {
  let c = `${name}=${value}; Path=${opts.path ?? '/'}; HttpOnly; SameSite=Lax`
  if (opts.secure) c += '; Secure'
  if (opts.domain) c += `; Domain=${opts.domain}`
  if (opts.maxAgeS !== undefined) c += `; Max-Age=${Math.max(0, Math.floor(opts.maxAgeS))}`
  return c
}
