/**
 * Authtokens, kept only as SHA-256 digests and compared in constant time.
 *
 * Hashing first gives every comparison the same length, so `timingSafeEqual` never
 * leaks a token's length, and a memory dump of the relay holds no usable token.
 * A tokens file holds one token per line, or `sha256:<hex>` for a token stored hashed;
 * `#` starts a comment.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { RelayError } from './errors.js'

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

export interface TokenStore {
  /** No tokens configured: the relay is anonymous. */
  readonly anonymous: boolean
  readonly size: number
  /** The digest of a valid token, or undefined. Checks every entry, always. */
  verify(token: string): Buffer | undefined
  /** Whether a digest is one of the store's (for a reload: is this agent's token still valid). */
  hasDigest(digest: Buffer): boolean
  digests(): Buffer[]
}

export function parseTokensFile(path: string): Buffer[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new RelayError('GW_ERR_RELAY_TOKENS_FILE', `cannot read the tokens file ${path}: ${(err as Error).message}`, { cause: err })
  }
  const digests: Buffer[] = []
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const hashed = /^sha256:([0-9a-f]{64})$/i.exec(line)
    if (hashed) digests.push(Buffer.from(hashed[1]!, 'hex'))
    else if (line.startsWith('sha256:')) {
      throw new RelayError('GW_ERR_RELAY_TOKENS_FILE', `${path}:${index + 1}: a hashed token is sha256: followed by 64 hex digits`)
    } else digests.push(hashToken(line))
  }
  return digests
}

export function createTokenStore(tokens: string[], digests: Buffer[] = []): TokenStore {
  const all = [...tokens.filter((t) => t.length > 0).map(hashToken), ...digests]
  return {
    anonymous: all.length === 0,
    size: all.length,
    verify(token: string): Buffer | undefined {
      const digest = hashToken(token)
      let match: Buffer | undefined
      // No early exit: the time taken does not depend on which entry matched.
      for (const candidate of all) {
        if (timingSafeEqual(candidate, digest)) match = candidate
      }
      return match
    },
    hasDigest(digest: Buffer): boolean {
      let found = false
      for (const candidate of all) {
        if (candidate.length === digest.length && timingSafeEqual(candidate, digest)) found = true
      }
      return found
    },
    digests: () => [...all],
  }
}
