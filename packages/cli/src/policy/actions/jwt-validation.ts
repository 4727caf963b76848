/**
 * `jwt-validation`: Bearer tokens checked with `jose`, configured as in ngrok:
 *
 * ```yaml
 * issuer: {allow_list: [{value: https://idp.example}]}
 * audience: {allow_list: [{value: api}]}
 * http: {tokens: [{type: jwt, method: header, name: Authorization, prefix: "Bearer "}]}
 * jws:
 *   allowed_algorithms: [RS256, ES256]
 *   keys: {sources: {additional_jkus: [https://idp.example/jwks.json]}}
 * ```
 *
 * Keys come from JWKS URLs (cached; fetched again when a token names an unknown `kid`,
 * which is how key rotation is picked up), from the issuer's OIDC discovery document
 * when no JWKS URL is given, or inline (`jws.keys.inline: [JWK…]`, gw's addition).
 * Expiry and not-before are checked with `clock_skew` tolerance (gw's, default 30s).
 * Failures answer 401 with an RFC 6750 `WWW-Authenticate: Bearer error="invalid_token"`.
 * The claims land in `actions.ngrok.jwt_validation.tokens[0].payload`.
 */
import {
  createLocalJWKSet, createRemoteJWKSet, customFetch, decodeProtectedHeader, errors as joseErrors, jwtVerify,
  type JWK, type JWTVerifyGetKey,
} from 'jose'
import { respond, respondJson, type ActionDefinition, type CompileContext } from '../action.js'
import { bufferRequestBody, DEFAULT_BODY_LIMIT, tooLarge } from '../body.js'
import { ConfigReader, describe } from '../config-reader.js'
import { getHeader } from '../headers.js'
import { setActionResult, type PolicyState } from '../state.js'

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'HS256', 'HS384', 'HS512']
const TOKEN_TYPES = ['jwt', 'access_token', 'id_token', 'at+jwt', 'it+jwt', 'plain']

interface TokenSource {
  type: string
  method: 'header' | 'body'
  name: string
  lowerName: string
  prefix: string
}

function allowList(config: ConfigReader, key: string, required = true): string[] {
  if (!required && !config.has(key)) return []
  const c = config.child(key, true)
  const list = c.list('allow_list', true, 1)
  c.done()
  return list.map((item, i) => {
    const entry = new ConfigReader(item, [...c.path, 'allow_list', i], config.source)
    const v = entry.string('value')
    entry.done()
    return v
  })
}

function keySources(config: ConfigReader): { jkus: string[]; inline: JWK[] } {
  const jws = config
  const raw = jws.raw('keys')
  const jkus: string[] = []
  const inline: JWK[] = []
  // ngrok documents `keys` both as a list of {identification, sources: [{additional_jkus}]}
  // and as {sources: {additional_jkus}}; accept both.
  const readSources = (value: unknown, path: Array<string | number>): void => {
    const items = Array.isArray(value) ? value : [value]
    items.forEach((s, i) => {
      const src = new ConfigReader(s, Array.isArray(value) ? [...path, i] : path, config.source)
      for (const u of src.stringList('additional_jkus', false)) {
        try {
          new URL(u)
        } catch {
          src.fail('additional_jkus', `${describe(u)} is not a URL`)
        }
        jkus.push(u)
      }
      src.done()
    })
  }
  const readKeys = (value: unknown, path: Array<string | number>): void => {
    const k = new ConfigReader(value, path, config.source)
    k.raw('identification')
    if (k.has('sources')) readSources(k.raw('sources'), [...path, 'sources'])
    const list = k.list('inline', false)
    list.forEach((jwk, i) => {
      if (!jwk || typeof jwk !== 'object' || typeof (jwk as JWK).kty !== 'string') throw k.errorAt([...path, 'inline', i], 'must be a JWK object with kty')
      inline.push(jwk as JWK)
    })
    k.done()
  }
  if (Array.isArray(raw)) raw.forEach((k, i) => readKeys(k, [...jws.path, 'keys', i]))
  else if (raw !== undefined && raw !== null) readKeys(raw, [...jws.path, 'keys'])
  return { jkus, inline }
}

/** Keys from JWKS URLs, discovery, or inline JWKs; tries each key set in turn. */
function createKeyResolver(ctx: CompileContext, issuers: string[], jkus: string[], inline: JWK[], cooldownMs: number): JWTVerifyGetKey {
  const options = { cooldownDuration: cooldownMs, cacheMaxAge: 15 * 60_000, timeoutDuration: 5_000, [customFetch]: ctx.fetch }
  const sets: JWTVerifyGetKey[] = []
  if (inline.length > 0) sets.push(createLocalJWKSet({ keys: inline }))
  for (const u of jkus) sets.push(createRemoteJWKSet(new URL(u), options))
  let discovered: Promise<JWTVerifyGetKey[]> | undefined
  const discover = (): Promise<JWTVerifyGetKey[]> =>
    (discovered ??= Promise.all(issuers.map(async (iss) => {
      const res = await ctx.fetch(`${iss.replace(/\/$/, '')}/.well-known/openid-configuration`)
      if (!res.ok) throw new Error(`OIDC discovery for ${iss} answered ${res.status}`)
      const meta = (await res.json()) as { jwks_uri?: string }
      if (!meta.jwks_uri) throw new Error(`OIDC discovery for ${iss} has no jwks_uri`)
      return createRemoteJWKSet(new URL(meta.jwks_uri), options)
    })).catch((err: unknown) => {
      discovered = undefined
      throw err
    }))
  return async function getKey(header, token) {
    const all = sets.length > 0 ? sets : await discover()
    let last: unknown
    for (const set of all) {
      try {
        return await set(header, token)
      } catch (err) {
        last = err
      }
    }
    throw last
  }
}

function bearerChallenge(realm: string, error?: string, description?: string): string {
  let v = `Bearer realm="${realm}"`
  if (error) v += `, error="${error}"`
  if (description) v += `, error_description="${description.replace(/["\\]/g, "'")}"`
  return v
}

export const jwtValidation: ActionDefinition = {
  type: 'jwt-validation',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const issuers = allowList(config, 'issuer')
    // ngrok's audience is optional: without it, any aud is accepted (the issuer and the signature still are checked).
    const audiences = allowList(config, 'audience', false)
    const http = config.child('http', true)
    const tokens: TokenSource[] = http.list('tokens', true, 1).map((t, i) => {
      const tc = new ConfigReader(t, [...http.path, 'tokens', i], config.source)
      const type = tc.oneOf('type', TOKEN_TYPES, 'jwt')
      const method = tc.oneOf('method', ['header', 'body'] as const, 'header')
      const name = tc.string('name', 'Authorization')
      const prefix = tc.string('prefix', method === 'header' && name.toLowerCase() === 'authorization' ? 'Bearer ' : '')
      tc.done()
      return { type, method, name, lowerName: name.toLowerCase(), prefix }
    })
    http.done()
    const jws = config.child('jws', true)
    const algorithms = jws.stringList('allowed_algorithms', true, 1)
    algorithms.forEach((a, i) => {
      if (!ALGORITHMS.includes(a)) throw jws.errorAt([...jws.path, 'allowed_algorithms', i], `${describe(a)} is not a supported algorithm (none is never allowed)`, ALGORITHMS)
    })
    const { jkus, inline } = keySources(jws)
    jws.done()
    const clockSkewMs = config.duration('clock_skew', 30_000, 0, 3_600_000)
    const cooldownMs = config.duration('jwks_refresh_cooldown', 30_000, 0, 3_600_000)
    const realm = config.string('realm', 'gw')
    const bodyLimit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    config.done()

    const getKey = createKeyResolver(ctx, issuers, jkus, inline, cooldownMs)
    const clock = ctx.clock

    function unauthorized(state: PolicyState, code: string, description: string | undefined, status = 401) {
      setActionResult(state, 'ngrok', 'jwt_validation', { tokens: [], error: { code, message: description ?? 'no token presented' } })
      const challenge = bearerChallenge(realm, description === undefined ? undefined : code, description)
      if (status !== 401) return respondJson(status, { error: code, error_description: description }, ['www-authenticate', challenge])
      return respondJson(401, description === undefined ? { error: 'unauthorized' } : { error: code, error_description: description }, ['www-authenticate', challenge])
    }

    return async function validateJwt(state) {
      const req = state.request!
      let token: string | undefined
      let source: TokenSource | undefined
      for (const t of tokens) {
        let value: string | undefined
        if (t.method === 'header') value = getHeader(req.rawHeaders, t.lowerName)
        else {
          const body = await bufferRequestBody(req, bodyLimit)
          if (body === undefined) return tooLarge(bodyLimit)
          value = tokenFromBody(body, getHeader(req.rawHeaders, 'content-type') ?? '', t.name)
        }
        if (value === undefined) continue
        if (t.prefix) {
          if (value.slice(0, t.prefix.length).toLowerCase() !== t.prefix.toLowerCase()) continue
          value = value.slice(t.prefix.length)
        }
        token = value.trim()
        source = t
        break
      }
      if (!token || !source) return unauthorized(state, 'invalid_request', undefined)
      try {
        const { payload, protectedHeader } = await jwtVerify(token, getKey, {
          issuer: issuers,
          ...(audiences.length > 0 ? { audience: audiences } : {}),
          algorithms,
          clockTolerance: clockSkewMs / 1000,
          currentDate: new Date(clock()),
          ...(source.type === 'at+jwt' || source.type === 'it+jwt' ? { typ: source.type } : {}),
        })
        setActionResult(state, 'ngrok', 'jwt_validation', {
          tokens: [{
            header: protectedHeader,
            payload,
            signature: token.slice(token.lastIndexOf('.') + 1),
            verified: true,
            location: source.method,
            location_property: source.name,
          }],
        })
        return undefined
      } catch (err) {
        if (err instanceof joseErrors.JOSEError) {
          if (err instanceof joseErrors.JWKSTimeout || (err.code === 'ERR_JWKS_INVALID' && !(err instanceof joseErrors.JWKSNoMatchingKey))) {
            return unauthorized(state, 'temporarily_unavailable', `the signing keys could not be fetched: ${err.message}`, 503)
          }
          return unauthorized(state, 'invalid_token', describeJoseError(err, token))
        }
        // Discovery or network failure while fetching keys.
        return respond(502, ['content-type', 'application/json', 'www-authenticate', bearerChallenge(realm)],
          JSON.stringify({ error: 'GW_ERR_POLICY_IDP_UNREACHABLE', message: `the signing keys could not be fetched: ${(err as Error).message}` }),
          'GW_ERR_POLICY_IDP_UNREACHABLE')
      }
    }
  },
}

function describeJoseError(err: InstanceType<typeof joseErrors.JOSEError>, token: string): string {
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired'
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `the ${err.claim} claim is not accepted: ${err.reason === 'check_failed' ? err.message : err.reason}`
  if (err instanceof joseErrors.JWKSNoMatchingKey) {
    let kid = ''
    try {
      kid = decodeProtectedHeader(token).kid ?? ''
    } catch {
      // described below
    }
    return `no signing key matches the token${kid ? ` (kid ${kid})` : ''}`
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm that is not allowed'
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is not valid'
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'the token is malformed'
  return err.message
}

function tokenFromBody(body: Buffer, contentType: string, field: string): string | undefined {
  const text = body.toString('utf8')
  if (contentType.includes('application/x-www-form-urlencoded')) return new URLSearchParams(text).get(field) ?? undefined
  try {
    const v = (JSON.parse(text) as Record<string, unknown>)[field]
    return typeof v === 'string' ? v : undefined
  } catch {
    return undefined
  }
}
