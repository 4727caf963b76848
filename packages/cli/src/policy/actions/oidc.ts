/**
 * `openid-connect` (ngrok's name; `oidc` is kept as an alias): log users in with any
 * OpenID Connect provider before they reach the upstream.
 *
 * - Discovery from `issuer_url` (fetched on first use, cached).
 * - The ID token is verified against the provider's JWKS (issuer, audience, nonce), and
 *   the userinfo endpoint's claims are merged in when it has one.
 * - The session, the callback and the special paths are login-session.ts's.
 *
 * The redirect URI to register with the provider is
 * `<public url><callback_path>` (default `/_gw/oidc/callback`).
 */
import { createRemoteJWKSet, customFetch, jwtVerify, type JWTVerifyGetKey } from 'jose'
import type { ActionDefinition, CompileContext } from '../action.js'
import type { ConfigReader } from '../config-reader.js'
import { createLoginSession, type LoginProvider } from '../login-session.js'

interface Discovery {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  userinfo_endpoint?: string
  end_session_endpoint?: string
  jwks_uri: string
}

const JWT_FIELDS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'at_hash', 'c_hash', 'azp', 'sid', 'auth_time', 'jti'])

function createDiscovery(ctx: CompileContext, issuerUrl: string) {
  let discovery: Promise<{ meta: Discovery; keys: JWTVerifyGetKey }> | undefined
  return function discover() {
    discovery ??= (async () => {
      const res = await ctx.fetch(`${issuerUrl.replace(/\/$/, '')}/.well-known/openid-configuration`)
      if (!res.ok) throw new Error(`discovery answered ${res.status}`)
      const meta = (await res.json()) as Discovery
      if (!meta.authorization_endpoint || !meta.token_endpoint || !meta.jwks_uri) throw new Error('the discovery document lacks endpoints')
      return { meta, keys: createRemoteJWKSet(new URL(meta.jwks_uri), { [customFetch]: ctx.fetch }) }
    })().catch((err: unknown) => {
      discovery = undefined
      throw err
    })
    return discovery
  }
}

/** The token request's client authentication (RFC 6749 §2.3.1). */
export function clientAuth(
  method: 'client_secret_basic' | 'client_secret_post' | 'none', clientId: string, clientSecret: string | undefined, form: URLSearchParams,
): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
  if (method === 'client_secret_basic') {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret ?? '')}`).toString('base64')}`
  } else {
    form.set('client_id', clientId)
    if (method === 'client_secret_post') form.set('client_secret', clientSecret ?? '')
  }
  return headers
}

/** `authz_url_params`: extra parameters for the authorization URL; gw's own ones cannot be overridden. */
export function readAuthzParams(config: ConfigReader): Map<string, string> {
  const params = config.stringMap('authz_url_params', false)
  const reserved = ['response_type', 'client_id', 'redirect_uri', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'scope']
  for (const k of params.keys()) {
    if (reserved.includes(k)) config.fail('authz_url_params', `cannot set ${k}: gw sets it for the login flow`, reserved)
  }
  return params
}

/** The session fields both login actions read, with ngrok's names (and gw's older ones). */
export function readSessionConfig(config: ConfigReader, defaults: { callbackPath: string; cookieName: string }) {
  const maxSessionMs = config.duration('max_session_duration', 24 * 3_600_000, 60_000)
  if (config.has('idle_session_duration') && config.has('idle_session_timeout')) {
    config.fail('idle_session_timeout', 'is the other name of idle_session_duration; give one of them')
  }
  const idleKey = config.has('idle_session_duration') ? 'idle_session_duration' : 'idle_session_timeout'
  const idleMs = config.duration(idleKey, 4 * 3_600_000, 60_000)
  const authId = config.optString('auth_id')
  if (authId !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(authId)) {
    config.fail('auth_id', `must be 1 to 64 letters, digits, _ or -, got ${JSON.stringify(authId)}`)
  }
  const callbackPath = config.string('callback_path', authId ? `${defaults.callbackPath}/${authId}` : defaults.callbackPath)
  if (!callbackPath.startsWith('/')) config.fail('callback_path', 'must start with /')
  return {
    maxSessionMs, idleMs, authId, callbackPath,
    cookieDomain: config.optString('auth_cookie_domain'),
    allowPreflight: config.bool('allow_cors_preflight', false),
    logoutPath: config.string('logout_path', defaults.callbackPath.replace(/\/callback$/, '/logout')),
    cookieName: config.string('cookie_name', authId ? `${defaults.cookieName}_${authId}` : defaults.cookieName),
    cookieSecret: config.optString('cookie_secret'),
    refreshMs: config.has('userinfo_refresh_interval') ? config.duration('userinfo_refresh_interval', undefined, 10_000) : undefined,
  }
}

/** Read the provider's userinfo with an access token: the identity, or undefined when the token is refused (401/403). */
export async function fetchUserinfo(ctx: CompileContext, url: string, accessToken: string): Promise<Record<string, unknown> | undefined> {
  const res = await ctx.fetch(url, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', 'user-agent': 'gw' } })
  if (res.status === 401 || res.status === 403) {
    await res.arrayBuffer().catch(() => undefined)
    return undefined
  }
  if (!res.ok) throw new Error(`${new URL(url).host} answered ${res.status}`)
  const info = (await res.json()) as unknown
  if (typeof info !== 'object' || info === null || Array.isArray(info)) throw new Error(`${new URL(url).host} did not answer with an object`)
  return info as Record<string, unknown>
}

function compileOidc(config: ConfigReader, ctx: CompileContext) {
  const issuerUrl = config.string('issuer_url')
  try {
    new URL(issuerUrl)
  } catch {
    config.fail('issuer_url', `must be a URL, e.g. https://accounts.google.com, got ${JSON.stringify(issuerUrl)}`)
  }
  const clientId = config.string('client_id')
  const clientSecret = config.optString('client_secret')
  const scopes = config.stringList('scopes', false)
  if (scopes.length === 0) scopes.push('openid', 'profile', 'email')
  else if (!scopes.includes('openid')) scopes.unshift('openid')
  const authzParams = readAuthzParams(config)
  const session = readSessionConfig(config, { callbackPath: '/_gw/oidc/callback', cookieName: 'gw_oidc' })
  const authMethod = config.oneOf('token_endpoint_auth_method', ['client_secret_basic', 'client_secret_post', 'none'] as const, clientSecret ? 'client_secret_basic' : 'none')
  config.done()
  const discover = createDiscovery(ctx, issuerUrl)
  const clock = ctx.clock

  const provider: LoginProvider = {
    async authorizationUrl(p) {
      const { meta } = await discover()
      const url = new URL(meta.authorization_endpoint)
      url.searchParams.set('response_type', 'code')
      url.searchParams.set('client_id', clientId)
      url.searchParams.set('redirect_uri', p.redirectUri)
      url.searchParams.set('scope', scopes.join(' '))
      url.searchParams.set('state', p.state)
      url.searchParams.set('nonce', p.nonce)
      url.searchParams.set('code_challenge', p.codeChallenge)
      url.searchParams.set('code_challenge_method', 'S256')
      for (const [k, v] of authzParams) url.searchParams.set(k, v)
      return url.href
    },
    async exchange(p) {
      const { meta, keys } = await discover()
      const form = new URLSearchParams({ grant_type: 'authorization_code', code: p.code, redirect_uri: p.redirectUri, code_verifier: p.codeVerifier })
      const headers = clientAuth(authMethod, clientId, clientSecret, form)
      const tokenRes = await ctx.fetch(meta.token_endpoint, { method: 'POST', headers, body: form.toString() })
      const tokens = (await tokenRes.json().catch(() => ({}))) as { id_token?: string; access_token?: string; error?: string; error_description?: string }
      if (!tokenRes.ok || !tokens.id_token) {
        return { error: tokens.error ?? 'token_exchange_failed', error_description: tokens.error_description ?? `the token endpoint answered ${tokenRes.status}` }
      }
      let claims: Record<string, unknown>
      try {
        const { payload } = await jwtVerify(tokens.id_token, keys, { issuer: meta.issuer, audience: clientId, currentDate: new Date(clock()), clockTolerance: 60 })
        if (payload.nonce !== p.nonce) throw new Error('the nonce does not match')
        claims = { ...payload }
      } catch (err) {
        return { error: 'invalid_id_token', error_description: (err as Error).message }
      }
      if (meta.userinfo_endpoint && tokens.access_token) {
        const ui = await ctx.fetch(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })
        if (ui.ok) {
          const info = (await ui.json()) as Record<string, unknown>
          if (info.sub === claims.sub) claims = { ...claims, ...info }
        }
      }
      const kept: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(claims)) if (!JWT_FIELDS.has(k)) kept[k] = v
      return {
        sub: String(claims.sub), email: typeof claims.email === 'string' ? claims.email : '',
        name: typeof claims.name === 'string' ? claims.name : '', claims: kept,
        identityToken: tokens.id_token, ...(tokens.access_token ? { accessToken: tokens.access_token } : {}),
      }
    },
    async refresh(accessToken) {
      const { meta } = await discover()
      if (!meta.userinfo_endpoint) return null
      const info = await fetchUserinfo(ctx, meta.userinfo_endpoint, accessToken)
      if (!info) return undefined
      const kept: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(info)) if (!JWT_FIELDS.has(k)) kept[k] = v
      return {
        sub: String(info.sub), email: typeof info.email === 'string' ? info.email : '',
        name: typeof info.name === 'string' ? info.name : '', claims: kept,
      }
    },
    async endSessionUrl() {
      const { meta } = await discover()
      if (!meta.end_session_endpoint) return undefined
      const u = new URL(meta.end_session_endpoint)
      u.searchParams.set('client_id', clientId)
      return u.href
    },
  }
  return createLoginSession({ resultName: 'oidc', provider, clock, ...session })
}

export const openidConnect: ActionDefinition = {
  type: 'openid-connect',
  phases: ['on_http_request'],
  compile: compileOidc,
}

/** gw's first name for openid-connect; the same action. */
export const oidc: ActionDefinition = {
  type: 'oidc',
  phases: ['on_http_request'],
  compile: compileOidc,
}
