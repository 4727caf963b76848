/**
 * `oidc`: log users in with any OpenID Connect provider before they reach the upstream.
 *
 * - Discovery from `issuer_url` (fetched on first use, cached).
 * - Authorization code flow with PKCE (S256), `state` and `nonce`; the in-flight login
 *   lives in a short-lived encrypted cookie, so the agent keeps no server-side state.
 * - The session is an encrypted cookie holding the identity, its start and last-seen
 *   times; `max_session_duration` bounds the first, `idle_session_timeout` the second.
 * - `logout_path` clears the session (and goes to the provider's end-session endpoint
 *   when it has one).
 * - The identity is exposed as `actions.ngrok.oidc.identity.{sub,email,name,claims}` and
 *   sent upstream as `X-Gw-Oidc-Sub`, `X-Gw-Oidc-Email` and `X-Gw-Oidc-Name`; copies of
 *   these headers from the client are removed first, so they cannot be forged.
 *
 * The redirect URI to register with the provider is
 * `<public url><callback_path>` (default `/_gw/oidc/callback`).
 */
import { createHash, randomBytes } from 'node:crypto'
import { createRemoteJWKSet, customFetch, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { respond, respondJson, type ActionDefinition, type CompileContext } from '../action.js'
import { getHeader, removeHeaders } from '../headers.js'
import { createCookieSealer, readCookie, serializeCookie, stripCookie } from '../sealed-cookie.js'
import { addResponseHook, setActionResult, type PolicyState } from '../state.js'

interface Discovery {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  userinfo_endpoint?: string
  end_session_endpoint?: string
  jwks_uri: string
}

interface Transaction {
  state: string
  verifier: string
  nonce: string
  returnTo: string
  created: number
}

interface Session {
  sub: string
  email: string
  name: string
  claims: Record<string, unknown>
  created: number
  seen: number
}

const IDENTITY_HEADERS = new Set(['x-gw-oidc-sub', 'x-gw-oidc-email', 'x-gw-oidc-name'])
const JWT_FIELDS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'at_hash', 'c_hash', 'azp', 'sid', 'auth_time', 'jti'])

function b64url(buf: Buffer): string {
  return buf.toString('base64url')
}

function createProvider(ctx: CompileContext, issuerUrl: string) {
  let discovery: Promise<{ meta: Discovery; keys: JWTVerifyGetKey }> | undefined
  return function provider() {
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

export const oidc: ActionDefinition = {
  type: 'oidc',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const issuerUrl = config.string('issuer_url')
    try {
      new URL(issuerUrl)
    } catch {
      config.fail('issuer_url', 'must be a URL, e.g. https://accounts.google.com')
    }
    const clientId = config.string('client_id')
    const clientSecret = config.optString('client_secret')
    const scopes = config.stringList('scopes', false)
    if (scopes.length === 0) scopes.push('openid', 'profile', 'email')
    else if (!scopes.includes('openid')) scopes.unshift('openid')
    const maxSessionMs = config.duration('max_session_duration', 24 * 3_600_000, 60_000)
    const idleMs = config.duration('idle_session_timeout', 4 * 3_600_000, 60_000)
    const cookieDomain = config.optString('auth_cookie_domain')
    const allowPreflight = config.bool('allow_cors_preflight', false)
    const callbackPath = config.string('callback_path', '/_gw/oidc/callback')
    const logoutPath = config.string('logout_path', '/_gw/oidc/logout')
    const cookieName = config.string('cookie_name', 'gw_oidc')
    const authMethod = config.oneOf('token_endpoint_auth_method', ['client_secret_basic', 'client_secret_post', 'none'] as const, clientSecret ? 'client_secret_basic' : 'none')
    const sealer = createCookieSealer(config.optString('cookie_secret'))
    config.done()
    if (!callbackPath.startsWith('/')) config.fail('callback_path', 'must start with /')
    const txName = `${cookieName}_tx`
    const provider = createProvider(ctx, issuerUrl)
    const clock = ctx.clock

    function cookie(state: PolicyState, name: string, value: string, maxAgeS: number): string {
      return serializeCookie(name, value, { maxAgeS, domain: cookieDomain, secure: state.request!.scheme === 'https' })
    }

    async function startLogin(state: PolicyState) {
      const req = state.request!
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return respondJson(401, { error: 'unauthorized', message: 'log in first: open this URL in a browser' })
      }
      const { meta } = await provider()
      const tx: Transaction = {
        state: b64url(randomBytes(16)), verifier: b64url(randomBytes(32)), nonce: b64url(randomBytes(16)),
        returnTo: req.target, created: clock(),
      }
      const url = new URL(meta.authorization_endpoint)
      url.searchParams.set('response_type', 'code')
      url.searchParams.set('client_id', clientId)
      url.searchParams.set('redirect_uri', `${req.scheme}://${req.host}${callbackPath}`)
      url.searchParams.set('scope', scopes.join(' '))
      url.searchParams.set('state', tx.state)
      url.searchParams.set('nonce', tx.nonce)
      url.searchParams.set('code_challenge', b64url(createHash('sha256').update(tx.verifier).digest()))
      url.searchParams.set('code_challenge_method', 'S256')
      return respond(302, ['location', url.href, 'set-cookie', cookie(state, txName, sealer.seal(txName, tx), 600), 'cache-control', 'no-store'])
    }

    async function finishLogin(state: PolicyState) {
      const req = state.request!
      const params = new URLSearchParams(req.target.slice(req.target.indexOf('?') + 1))
      const sealedTx = readCookie(req.rawHeaders, txName)
      const tx = sealedTx ? sealer.open<Transaction>(txName, sealedTx) : undefined
      if (params.get('error')) {
        return respondJson(401, { error: params.get('error'), error_description: params.get('error_description') ?? 'the provider refused the login' })
      }
      if (!tx || tx.state !== params.get('state') || clock() - tx.created > 600_000) {
        return respondJson(400, { error: 'invalid_state', message: 'the login expired or did not start here; open the page again' })
      }
      const code = params.get('code')
      if (!code) return respondJson(400, { error: 'invalid_request', message: 'the callback has no code' })
      const { meta, keys } = await provider()
      const form = new URLSearchParams({
        grant_type: 'authorization_code', code, redirect_uri: `${req.scheme}://${req.host}${callbackPath}`, code_verifier: tx.verifier,
      })
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
      if (authMethod === 'client_secret_basic') {
        headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret ?? '')}`).toString('base64')}`
      } else {
        form.set('client_id', clientId)
        if (authMethod === 'client_secret_post') form.set('client_secret', clientSecret ?? '')
      }
      const tokenRes = await ctx.fetch(meta.token_endpoint, { method: 'POST', headers, body: form.toString() })
      const tokens = (await tokenRes.json().catch(() => ({}))) as { id_token?: string; access_token?: string; error?: string; error_description?: string }
      if (!tokenRes.ok || !tokens.id_token) {
        return respondJson(401, { error: tokens.error ?? 'token_exchange_failed', error_description: tokens.error_description ?? `the token endpoint answered ${tokenRes.status}` })
      }
      let claims: Record<string, unknown>
      try {
        const { payload } = await jwtVerify(tokens.id_token, keys, { issuer: meta.issuer, audience: clientId, currentDate: new Date(clock()), clockTolerance: 60 })
        if (payload.nonce !== tx.nonce) throw new Error('the nonce does not match')
        claims = { ...payload }
      } catch (err) {
        return respondJson(401, { error: 'invalid_id_token', error_description: (err as Error).message })
      }
      if (meta.userinfo_endpoint && tokens.access_token) {
        const ui = await ctx.fetch(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })
        if (ui.ok) {
          const info = (await ui.json()) as Record<string, unknown>
          if (info.sub === claims.sub) claims = { ...claims, ...info }
        }
      }
      const now = clock()
      const kept: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(claims)) if (!JWT_FIELDS.has(k)) kept[k] = v
      const session: Session = {
        sub: String(claims.sub), email: typeof claims.email === 'string' ? claims.email : '',
        name: typeof claims.name === 'string' ? claims.name : '', claims: JSON.stringify(kept).length < 2000 ? kept : {},
        created: now, seen: now,
      }
      const returnTo = tx.returnTo.startsWith('/') && !tx.returnTo.startsWith('//') ? tx.returnTo : '/'
      return respond(302, [
        'location', returnTo,
        'set-cookie', cookie(state, cookieName, sealer.seal(cookieName, session), maxSessionMs / 1000),
        'set-cookie', cookie(state, txName, '', 0),
        'cache-control', 'no-store',
      ])
    }

    async function logout(state: PolicyState) {
      let location = '/'
      try {
        const { meta } = await provider()
        if (meta.end_session_endpoint) {
          const u = new URL(meta.end_session_endpoint)
          u.searchParams.set('client_id', clientId)
          location = u.href
        }
      } catch {
        // Logging out locally still works without the provider.
      }
      return respond(302, ['location', location, 'set-cookie', cookie(state, cookieName, '', 0), 'cache-control', 'no-store'])
    }

    return async function oidcAction(state) {
      const req = state.request!
      removeHeaders(req.rawHeaders, IDENTITY_HEADERS)
      const q = req.target.indexOf('?')
      const path = q === -1 ? req.target : req.target.slice(0, q)
      if (allowPreflight && req.method === 'OPTIONS' && getHeader(req.rawHeaders, 'access-control-request-method')) return
      try {
        if (path === callbackPath) return await finishLogin(state)
        if (path === logoutPath) return await logout(state)
        const sealed = readCookie(req.rawHeaders, cookieName)
        const session = sealed ? sealer.open<Session>(cookieName, sealed) : undefined
        const now = clock()
        if (!session || now - session.created > maxSessionMs || now - session.seen > idleMs) return await startLogin(state)
        stripCookie(req.rawHeaders, cookieName)
        stripCookie(req.rawHeaders, txName)
        req.rawHeaders.push('X-Gw-Oidc-Sub', session.sub, 'X-Gw-Oidc-Email', session.email, 'X-Gw-Oidc-Name', session.name)
        setActionResult(state, 'ngrok', 'oidc', { identity: { sub: session.sub, email: session.email, name: session.name, claims: session.claims } })
        // Sliding idle timeout: refresh last-seen at most once a minute.
        if (now - session.seen > 60_000) {
          session.seen = now
          const refreshed = cookie(state, cookieName, sealer.seal(cookieName, session), (maxSessionMs - (now - session.created)) / 1000)
          addResponseHook(state, (s) => {
            s.response?.rawHeaders.push('set-cookie', refreshed)
          })
        }
        return undefined
      } catch (err) {
        return respondJson(502, { error: 'GW_ERR_POLICY_IDP_UNREACHABLE', message: `the identity provider could not be reached: ${(err as Error).message}` }, [], 'GW_ERR_POLICY_IDP_UNREACHABLE')
      }
    }
  },
}
