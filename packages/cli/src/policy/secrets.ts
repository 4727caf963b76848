/**
 * ngrok's `secrets.get('vault', 'name')`: values kept out of the policy document. gw
 * reads them from a local vault (`gw secrets set`, a file in the config directory; see
 * config/secrets-file.ts) handed to `compilePolicy` as a `SecretStore`.
 *
 * - In a field read when the policy loads (basic-auth credentials, a webhook secret, a
 *   client secret…) `${secrets.get('vault', 'name')}` is replaced by the value then. Any
 *   other `${…}` in such a field is refused: it has no request to be evaluated against,
 *   and taking it as literal text would be wrong without a word.
 * - In an expression or a `${…}` template evaluated per request, `secrets.get` is a CEL
 *   function (cel.ts).
 * Either way a secret that the vault does not hold is an error when the policy loads,
 * naming the vault and the name, never the value of anything.
 *
 * Compiling is synchronous, so the store being compiled against sits in a module slot
 * for its duration, as the request being evaluated does in cel.ts.
 */
import { splitTemplate, UnclosedInterpolationError } from './template-split.js'

export interface SecretStore {
  get(vault: string, name: string): string | undefined
}

export const NO_SECRETS: SecretStore = { get: () => undefined }

let active: SecretStore = NO_SECRETS

/** Run `fn` (a policy compile) with `store` as the vault that `secrets.get` reads. */
export function withSecretStore<T>(store: SecretStore | undefined, fn: () => T): T {
  const previous = active
  active = store ?? NO_SECRETS
  try {
    return fn()
  } finally {
    active = previous
  }
}

export function activeSecretStore(): SecretStore {
  return active
}

/** The message for a secret the vault does not hold. */
export function missingSecret(vault: string, name: string): string {
  return `secret ${JSON.stringify(name)} is not in vault ${JSON.stringify(vault)}; set it with: gw secrets set ${vault} ${name}`
}

const SECRET_CALL = /^\s*secrets\s*\.\s*get\s*\(\s*(?:'([^'\\]*)'|"([^"\\]*)")\s*,\s*(?:'([^'\\]*)'|"([^"\\]*)")\s*\)\s*$/

/** `secrets.get('v', 'n')` with literal arguments → its vault and name. */
export function secretCall(expression: string): { vault: string; name: string } | undefined {
  const m = SECRET_CALL.exec(expression)
  return m ? { vault: m[1] ?? m[2]!, name: m[3] ?? m[4]! } : undefined
}

/**
 * A value read when the policy loads: its `${secrets.get(…)}` parts replaced by the
 * secrets' values. Text without `${` is returned as it is.
 */
export function resolveLoadTimeText(text: string): { value: string } | { error: string } {
  if (!text.includes('${')) return { value: text }
  let parts
  try {
    parts = splitTemplate(text)
  } catch (err) {
    if (err instanceof UnclosedInterpolationError) return { error: err.message }
    throw err
  }
  let value = ''
  for (const p of parts) {
    if (typeof p === 'string') {
      value += p
      continue
    }
    const call = secretCall(p.source)
    if (!call) {
      return { error: `takes no \${${p.source}}: this field is read once, when the policy loads, so the only \${…} it takes is secrets.get('vault', 'name')` }
    }
    const secret = active.get(call.vault, call.name)
    if (secret === undefined) return { error: missingSecret(call.vault, call.name) }
    value += secret
  }
  return { value }
}
