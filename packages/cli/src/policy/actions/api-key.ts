/**
 * `api-key` (gw's, beyond ngrok): a key read from a header or a query parameter and
 * checked against SHA-256 hashes, so the policy file never holds the keys themselves.
 * Each key has a name and scopes, which expressions read as
 * `actions.gw.api_key.name` / `.scopes` (e.g. `'write' in actions.gw.api_key.scopes`).
 *
 * ```yaml
 * config:
 *   header: x-api-key          # default
 *   query_param: api_key       # optional
 *   keys:
 *     - {name: ci, hash: "sha256:<hex>", scopes: [read, write]}
 *   keys_file: ./api-keys.txt  # lines of "<sha256 hex> <name> [scope,scope]"; # comments
 * ```
 * Generate a hash with `printf %s "$KEY" | sha256sum`.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { respondJson, type ActionDefinition } from '../action.js'
import { ConfigReader } from '../config-reader.js'
import { getHeader } from '../headers.js'
import { setActionResult } from '../state.js'

interface KeyEntry {
  name: string
  scopes: string[]
}

const HEX64 = /^[0-9a-f]{64}$/

function normalizeHash(text: string): string | undefined {
  const hex = text.trim().toLowerCase().replace(/^sha256:/, '')
  return HEX64.test(hex) ? hex : undefined
}

/** Parse a keys file; throws with the line number of a bad line. */
export function parseApiKeyFile(text: string): Array<{ hash: string; name: string; scopes: string[]; line: number }> {
  const out: Array<{ hash: string; name: string; scopes: string[]; line: number }> = []
  text.split(/\r?\n/).forEach((rawLine, i) => {
    const line = rawLine.trim()
    if (!line || line.startsWith('#')) return
    const [hashText, name, scopes] = line.split(/\s+/)
    const hash = normalizeHash(hashText!)
    if (!hash) throw new Error(`line ${i + 1}: expected "<sha256 hex> <name> [scope,scope]", got ${JSON.stringify(line.slice(0, 40))}`)
    out.push({ hash, name: name ?? `key-${i + 1}`, scopes: scopes ? scopes.split(',').filter(Boolean) : [], line: i + 1 })
  })
  return out
}

export const apiKey: ActionDefinition = {
  type: 'api-key',
  phases: ['on_http_request'],
  compile(config) {
    const header = config.string('header', 'x-api-key').toLowerCase()
    const queryParam = config.optString('query_param')
    const enforce = config.bool('enforce', true)
    const keys = new Map<string, KeyEntry>()
    config.list('keys', false).forEach((item, i) => {
      const k = new ConfigReader(item, [...config.path, 'keys', i], config.source)
      const hash = normalizeHash(k.string('hash'))
      if (!hash) throw k.errorAt(k.at('hash'), 'must be a SHA-256 hash: 64 hex digits, optionally prefixed with sha256:')
      keys.set(hash, { name: k.string('name', `key-${i + 1}`), scopes: k.stringList('scopes', false) })
      k.done()
    })
    const file = config.optString('keys_file')
    if (file !== undefined) {
      let text = ''
      try {
        text = readFileSync(file, 'utf8')
      } catch (err) {
        throw config.errorAt(config.at('keys_file'), `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      }
      try {
        for (const e of parseApiKeyFile(text)) keys.set(e.hash, { name: e.name, scopes: e.scopes })
      } catch (err) {
        config.fail('keys_file', `${file} ${(err as Error).message}`)
      }
    }
    if (keys.size === 0) config.fail(undefined, 'needs at least one key in keys or keys_file')
    config.done()

    return function checkApiKey(state) {
      const req = state.request!
      let presented = getHeader(req.rawHeaders, header)
      if (presented === undefined && queryParam !== undefined) {
        const q = req.target.indexOf('?')
        if (q !== -1) presented = new URLSearchParams(req.target.slice(q + 1)).get(queryParam) ?? undefined
      }
      // A map lookup on the hash: the hash of a wrong key reveals nothing about right ones.
      const entry = presented ? keys.get(createHash('sha256').update(presented).digest('hex')) : undefined
      setActionResult(state, 'gw', 'api_key', {
        presented: presented !== undefined,
        authorized: entry !== undefined,
        name: entry?.name ?? '',
        scopes: entry?.scopes ?? [],
      })
      if (!entry && enforce) {
        return respondJson(401, {
          error: 'unauthorized',
          message: presented === undefined ? `an API key is required in the ${header} header` : 'the API key is not valid',
        }, ['www-authenticate', `ApiKey header="${header}"`])
      }
    }
  },
}
