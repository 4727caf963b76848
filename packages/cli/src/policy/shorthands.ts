/**
 * CLI shorthands → a traffic policy, for the common cases with no file:
 *
 * | flag | becomes |
 * |---|---|
 * | `--cidr-allow`, `--cidr-deny` | `restrict-ips` |
 * | `--basic-auth user:pass` (repeatable) | `basic-auth` |
 * | `--jwt-issuer <url> --jwt-audience <aud>` | `jwt-validation`, keys from the issuer's discovery |
 * | `--api-key-file <file>` | `api-key` |
 * | `--rate-limit 100/60s` | `rate-limit` per client IP |
 * | `--route /api=3001 --route /=3000` | one `forward` rule per route, longest prefix first |
 *
 * Rules come in the gateway's order: IP lists, authentication, rate limit, routing. The
 * result is the same document a policy file would hold (`gw http --print-policy` shows
 * it), and it is validated by `compilePolicy` like one. This function only builds; it
 * throws `PolicyError` for a flag it cannot parse.
 */
import { PolicyError } from './errors.js'
import { parseDuration } from './duration.js'
import { parseCidr } from './cidr.js'
import { parseTargetAddress } from '../upstream/target.js'

export interface PolicyShorthands {
  basicAuth?: readonly string[]
  cidrAllow?: readonly string[]
  cidrDeny?: readonly string[]
  /** `100/60s`, `10/s`, `1000/1h`. */
  rateLimit?: string
  jwtIssuer?: string
  jwtAudience?: string | readonly string[]
  apiKeyFile?: string
  /** `/api=3001`, `/=localhost:3000`, `/v2=http://127.0.0.1:8080`. */
  route?: readonly string[]
}

export interface PolicyDocument {
  on_http_request?: Array<Record<string, unknown>>
  on_http_response?: Array<Record<string, unknown>>
  [key: string]: unknown
}

function flagError(flag: string, reason: string, allowed?: string[]): PolicyError {
  return new PolicyError('GW_ERR_POLICY_INVALID', reason, { file: undefined, line: undefined, col: undefined, path: flag }, allowed)
}

const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA']

/** `100/60s` → capacity 100 over 60 s. A bare unit (`10/s`, `500/m`) means one of it. */
export function parseRateLimit(text: string): { capacity: number; rate: string } | undefined {
  const m = /^\s*(\d+)\s*\/\s*(\d*(?:\.\d+)?)\s*(ms|s|m|h|d|sec|min|hour|day)?\s*$/.exec(text)
  if (!m) return undefined
  const capacity = Number(m[1])
  const unit = ({ sec: 's', min: 'm', hour: 'h', day: 'd' } as Record<string, string>)[m[3] ?? ''] ?? m[3] ?? 's'
  const amount = m[2] === '' ? '1' : m[2]!
  const rate = `${amount}${unit}`
  const ms = parseDuration(rate)
  if (!(capacity >= 1) || ms === undefined || ms <= 0) return undefined
  return { capacity, rate }
}

export function shorthandsToPolicy(flags: PolicyShorthands): PolicyDocument {
  const rules: Array<Record<string, unknown>> = []

  const allow = [...(flags.cidrAllow ?? [])]
  const deny = [...(flags.cidrDeny ?? [])]
  for (const [flag, list] of [['--cidr-allow', allow], ['--cidr-deny', deny]] as const) {
    for (const c of list) if (!parseCidr(c)) throw flagError(flag, `${JSON.stringify(c)} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32`)
  }
  if (allow.length > 0 || deny.length > 0) {
    rules.push({ name: 'cidr', actions: [{ type: 'restrict-ips', config: { ...(allow.length ? { allow } : {}), ...(deny.length ? { deny } : {}) } }] })
  }

  if (flags.basicAuth && flags.basicAuth.length > 0) {
    for (const c of flags.basicAuth) {
      const colon = c.indexOf(':')
      if (colon <= 0 || colon === c.length - 1) throw flagError('--basic-auth', 'must be user:password with both parts non-empty')
    }
    rules.push({ name: 'basic-auth', actions: [{ type: 'basic-auth', config: { credentials: [...flags.basicAuth] } }] })
  }

  if (flags.jwtIssuer !== undefined || flags.jwtAudience !== undefined) {
    if (!flags.jwtIssuer) throw flagError('--jwt-issuer', 'is required with --jwt-audience')
    const audiences = typeof flags.jwtAudience === 'string' ? [flags.jwtAudience] : [...(flags.jwtAudience ?? [])]
    if (audiences.length === 0) throw flagError('--jwt-audience', 'is required with --jwt-issuer')
    try {
      new URL(flags.jwtIssuer)
    } catch {
      throw flagError('--jwt-issuer', `${JSON.stringify(flags.jwtIssuer)} is not a URL, e.g. https://your-tenant.auth0.com/`)
    }
    rules.push({ name: 'jwt', actions: [{ type: 'jwt-validation', config: {
      issuer: { allow_list: [{ value: flags.jwtIssuer }] },
      audience: { allow_list: audiences.map((value) => ({ value })) },
      http: { tokens: [{ type: 'jwt', method: 'header', name: 'Authorization', prefix: 'Bearer ' }] },
      jws: { allowed_algorithms: JWT_ALGORITHMS },
    } }] })
  }

  if (flags.apiKeyFile !== undefined) {
    rules.push({ name: 'api-key', actions: [{ type: 'api-key', config: { keys_file: flags.apiKeyFile } }] })
  }

  if (flags.rateLimit !== undefined) {
    const parsed = parseRateLimit(flags.rateLimit)
    if (!parsed) throw flagError('--rate-limit', `${JSON.stringify(flags.rateLimit)} is not <requests>/<window>, e.g. 100/60s or 10/s`)
    rules.push({ name: 'rate-limit', actions: [{ type: 'rate-limit', config: {
      name: 'cli', algorithm: 'sliding_window', capacity: parsed.capacity, rate: parsed.rate, bucket_key: ['conn.client_ip'],
    } }] })
  }

  if (flags.route && flags.route.length > 0) {
    const routes = flags.route.map((r) => {
      const eq = r.indexOf('=')
      const prefix = eq === -1 ? '' : r.slice(0, eq)
      const target = eq === -1 ? '' : r.slice(eq + 1)
      if (!prefix.startsWith('/')) throw flagError('--route', `${JSON.stringify(r)} must be <path prefix>=<upstream>, e.g. /api=3001`)
      const address = parseTargetAddress(target)
      if (!address) throw flagError('--route', `${JSON.stringify(target)} in ${JSON.stringify(r)} is not an upstream: use a port, host:port or a URL`)
      return { prefix, url: `${address.origin}${address.basePath}` }
    })
    const seen = new Set<string>()
    for (const r of routes) {
      if (seen.has(r.prefix)) throw flagError('--route', `the prefix ${r.prefix} is given twice`)
      seen.add(r.prefix)
    }
    // Longest prefix first, so /api/v2 wins over /api and / catches the rest.
    routes.sort((a, b) => b.prefix.length - a.prefix.length)
    for (const r of routes) {
      const p = r.prefix.replace(/\/+$/, '')
      const expressions = p === '' ? [] : [`req.url.path == ${JSON.stringify(p)} || req.url.path.startsWith(${JSON.stringify(`${p}/`)})`]
      rules.push({ name: `route ${r.prefix}`, ...(expressions.length ? { expressions } : {}), actions: [{ type: 'forward', config: { url: r.url } }] })
    }
  }

  return rules.length === 0 ? {} : { on_http_request: rules }
}
