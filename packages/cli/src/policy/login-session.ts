/**
 * The browser login that `openid-connect` (alias `oidc`) and `oauth` share: a session in
 * an encrypted cookie, a login transaction in a short-lived one, the callback, and
 * ngrok's special paths. What differs between the two actions (how the authorization
 * URL is built, how a code becomes an identity) is the `LoginProvider`.
 *
 * - Authorization code flow with PKCE (S256), `state` and `nonce`; the in-flight login
 *   lives in a sealed cookie, so the agent keeps no server-side state.
 * - The session holds the identity, its start and last-seen times;
 *   `max_session_duration` bounds the first, the idle timeout the second.
 * - `/ngrok/login` starts a login (then back to `redirect_path`, default `/`),
 *   `/ngrok/logout` and gw's `logout_path` end the session; with `auth_id`, ngrok's
 *   paths answer only when `?auth_id=` names this action.
 * - The identity is `actions.ngrok.<name>.identity.*` and reaches the upstream as
 *   `X-Gw-Oidc-Sub`, `-Email`, `-Name`; the agent strips client-sent `X-Gw-Oidc-*`
 *   headers (identity-headers.ts) and the action removes them again.
 */
import { createHash, randomBytes } from 'node:crypto'
import { respond, respondJson, type ActionRunner, type RespondTerminal } from './action.js'
import { getHeader, removeHeaders } from './headers.js'
import { createCookieSealer, readCookie, serializeCookie, stripCookie } from './sealed-cookie.js'
import { addResponseHook, setActionResult, type PolicyState } from './state.js'

export interface LoginIdentity {
  sub: string
  email: string
  name: string
  claims: Record<string, unknown>
  /** The provider's tokens, for `actions.ngrok.<name>.identity_token` / `.access_token`. */
  identityToken?: string
  accessToken?: string
}

/** A failed login: the provider's (or gw's) error code and description, answered 401. */
export interface LoginFailure {
  error: string
  error_description: string
}

export interface LoginProvider {
  /** The provider's authorization URL for this login. */
  authorizationUrl(p: { redirectUri: string; state: string; nonce: string; codeChallenge: string }): Promise<string>
  /** Exchange the callback's code for the user's identity. */
  exchange(p: { code: string; redirectUri: string; codeVerifier: string; nonce: string }): Promise<LoginIdentity | LoginFailure>
  /** The provider's end-session URL, if it has one (OIDC). */
  endSessionUrl?(): Promise<string | undefined>
  /**
   * The user's current identity from the provider's userinfo, with the access token of
   * the login: `userinfo_refresh_interval`. Undefined: the provider no longer knows the
   * token (revoked, expired), so the user logs in again; null: the provider has no
   * userinfo to read, and the session stays as it is.
   */
  refresh?(accessToken: string): Promise<Omit<LoginIdentity, 'identityToken' | 'accessToken'> | undefined | null>
}

export interface LoginSessionOptions {
  /** `oidc` or `oauth`: the result is `actions.ngrok.<resultName>`. */
  resultName: 'oidc' | 'oauth'
  provider: LoginProvider
  clock: () => number
  maxSessionMs: number
  idleMs: number
  cookieDomain: string | undefined
  allowPreflight: boolean
  callbackPath: string
  logoutPath: string
  cookieName: string
  cookieSecret: string | undefined
  /** ngrok's `auth_id`: ngrok's special paths answer only for `?auth_id=<this>` when set. */
  authId: string | undefined
  /** ngrok's `userinfo_refresh_interval`, ms: how often the identity is read again from the provider. */
  refreshMs: number | undefined
}

interface Transaction {
  state: string
  verifier: string
  nonce: string
  returnTo: string
  created: number
}

interface Session extends LoginIdentity {
  created: number
  seen: number
  /** When the identity was last read from the provider. */
  refreshed?: number
}

const IDENTITY_HEADERS = new Set(['x-gw-oidc-sub', 'x-gw-oidc-email', 'x-gw-oidc-name'])
const TX_TTL_MS = 600_000
/** A cookie holds about 4 KB; the sealed session (base64url of JSON + 28 bytes) stays under it. */
const SESSION_JSON_MAX = 2800

function b64url(buf: Buffer): string {
  return buf.toString('base64url')
}

function isFailure(r: LoginIdentity | LoginFailure): r is LoginFailure {
  return (r as LoginFailure).error !== undefined
}

/** Only a local path: never `//evil.example` or an absolute URL (an open redirect). */
function localPath(p: string | null | undefined): string {
  return p && p.startsWith('/') && !p.startsWith('//') && !p.startsWith('/\\') ? p : '/'
}

export function createLoginSession(o: LoginSessionOptions): ActionRunner {
  const txName = `${o.cookieName}_tx`
  const sealer = createCookieSealer(o.cookieSecret)
  const clock = o.clock

  function cookie(state: PolicyState, name: string, value: string, maxAgeS: number): string {
    return serializeCookie(name, value, { maxAgeS, domain: o.cookieDomain, secure: state.request!.scheme === 'https' })
  }

  function redirectUri(state: PolicyState): string {
    return `${state.request!.scheme}://${state.request!.host}${o.callbackPath}`
  }

  async function startLogin(state: PolicyState, returnTo: string, fromBrowserOnly: boolean): Promise<RespondTerminal> {
    const req = state.request!
    if (fromBrowserOnly && req.method !== 'GET' && req.method !== 'HEAD') {
      return respondJson(401, { error: 'unauthorized', message: 'log in first: open this URL in a browser' })
    }
    const tx: Transaction = {
      state: b64url(randomBytes(16)), verifier: b64url(randomBytes(32)), nonce: b64url(randomBytes(16)),
      returnTo, created: clock(),
    }
    const url = await o.provider.authorizationUrl({
      redirectUri: redirectUri(state), state: tx.state, nonce: tx.nonce,
      codeChallenge: b64url(createHash('sha256').update(tx.verifier).digest()),
    })
    return respond(302, ['location', url, 'set-cookie', cookie(state, txName, sealer.seal(txName, tx), TX_TTL_MS / 1000), 'cache-control', 'no-store'])
  }

  async function finishLogin(state: PolicyState, params: URLSearchParams): Promise<RespondTerminal> {
    const req = state.request!
    const sealedTx = readCookie(req.rawHeaders, txName)
    const tx = sealedTx ? sealer.open<Transaction>(txName, sealedTx) : undefined
    if (params.get('error')) {
      return respondJson(401, { error: params.get('error'), error_description: params.get('error_description') ?? 'the provider refused the login' })
    }
    if (!tx || tx.state !== params.get('state') || clock() - tx.created > TX_TTL_MS) {
      return respondJson(400, { error: 'invalid_state', message: 'the login expired or did not start here; open the page again' })
    }
    const code = params.get('code')
    if (!code) return respondJson(400, { error: 'invalid_request', message: 'the callback has no code' })
    const result = await o.provider.exchange({ code, redirectUri: redirectUri(state), codeVerifier: tx.verifier, nonce: tx.nonce })
    if (isFailure(result)) return respondJson(401, result)
    const now = clock()
    const session: Session = { ...result, created: now, seen: now, refreshed: now }
    // Too big for a cookie: drop the extra claims first, then the ID token, then the access
    // token (which userinfo_refresh_interval needs).
    if (JSON.stringify(session).length > SESSION_JSON_MAX) session.claims = {}
    if (JSON.stringify(session).length > SESSION_JSON_MAX) delete session.identityToken
    if (JSON.stringify(session).length > SESSION_JSON_MAX) delete session.accessToken
    return respond(302, [
      'location', localPath(tx.returnTo),
      'set-cookie', cookie(state, o.cookieName, sealer.seal(o.cookieName, session), o.maxSessionMs / 1000),
      'set-cookie', cookie(state, txName, '', 0),
      'cache-control', 'no-store',
    ])
  }

  async function logout(state: PolicyState, returnTo: string | undefined): Promise<RespondTerminal> {
    let location = localPath(returnTo)
    if (returnTo === undefined && o.provider.endSessionUrl) {
      try {
        location = (await o.provider.endSessionUrl()) ?? location
      } catch {
        // Logging out locally still works without the provider.
      }
    }
    return respond(302, ['location', location, 'set-cookie', cookie(state, o.cookieName, '', 0), 'cache-control', 'no-store'])
  }

  /** ngrok's `/ngrok/login` and `/ngrok/logout`, for this action (its `auth_id`, when it has one). */
  function ngrokPath(path: string, params: URLSearchParams): 'login' | 'logout' | undefined {
    if (path !== '/ngrok/login' && path !== '/ngrok/logout') return undefined
    const asked = params.get('auth_id')
    if (o.authId !== undefined && asked !== null && asked !== o.authId) return undefined
    return path === '/ngrok/login' ? 'login' : 'logout'
  }

  return async function loginSession(state) {
    const req = state.request!
    removeHeaders(req.rawHeaders, IDENTITY_HEADERS)
    const q = req.target.indexOf('?')
    const path = q === -1 ? req.target : req.target.slice(0, q)
    const params = new URLSearchParams(q === -1 ? '' : req.target.slice(q + 1))
    if (o.allowPreflight && req.method === 'OPTIONS' && getHeader(req.rawHeaders, 'access-control-request-method')) return
    try {
      if (path === o.callbackPath) return await finishLogin(state, params)
      if (path === o.logoutPath) return await logout(state, undefined)
      const special = ngrokPath(path, params)
      if (special === 'logout') return await logout(state, params.get('redirect_path') ?? '/')
      if (special === 'login') return await startLogin(state, localPath(params.get('redirect_path')), false)
      const sealed = readCookie(req.rawHeaders, o.cookieName)
      const session = sealed ? sealer.open<Session>(o.cookieName, sealed) : undefined
      const now = clock()
      const timedOut = session !== undefined && now - session.seen > o.idleMs
      const maxReached = session !== undefined && now - session.created > o.maxSessionMs
      if (!session || timedOut || maxReached) {
        setActionResult(state, 'ngrok', o.resultName, { session_timed_out: timedOut, session_max_duration_reached: maxReached })
        return await startLogin(state, req.target, true)
      }
      // Continuous authorization: every refreshMs the identity is read again; a token the
      // provider no longer accepts ends the session.
      let userinfoRefreshed = false
      if (o.refreshMs !== undefined && o.provider.refresh && session.accessToken && now - (session.refreshed ?? session.created) >= o.refreshMs) {
        const fresh = await o.provider.refresh(session.accessToken)
        if (fresh === undefined || (fresh !== null && fresh.sub !== session.sub)) {
          setActionResult(state, 'ngrok', o.resultName, { error: { code: 'GW_ERR_POLICY_IDP_UNREACHABLE', message: 'the provider no longer accepts the login' } })
          return await startLogin(state, req.target, true)
        }
        Object.assign(session, fresh ?? {}, { refreshed: now })
        userinfoRefreshed = true
        const resealed = cookie(state, o.cookieName, sealer.seal(o.cookieName, session), (o.maxSessionMs - (now - session.created)) / 1000)
        addResponseHook(state, (s) => {
          s.response?.rawHeaders.push('set-cookie', resealed)
        })
      }
      stripCookie(req.rawHeaders, o.cookieName)
      stripCookie(req.rawHeaders, txName)
      req.rawHeaders.push('X-Gw-Oidc-Sub', session.sub, 'X-Gw-Oidc-Email', session.email, 'X-Gw-Oidc-Name', session.name)
      setActionResult(state, 'ngrok', o.resultName, {
        identity: {
          id: session.sub, provider_user_id: session.sub, sub: session.sub, email: session.email, name: session.name, claims: session.claims,
        },
        identity_token: session.identityToken ?? '',
        access_token: session.accessToken ?? '',
        expires_at: new Date(session.created + o.maxSessionMs).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        session_timed_out: false,
        session_max_duration_reached: false,
        userinfo_refreshed: userinfoRefreshed,
      })
      // Sliding idle timeout: refresh last-seen at most once a minute.
      if (!userinfoRefreshed && now - session.seen > 60_000) {
        session.seen = now
        const refreshed = cookie(state, o.cookieName, sealer.seal(o.cookieName, session), (o.maxSessionMs - (now - session.created)) / 1000)
        addResponseHook(state, (s) => {
          s.response?.rawHeaders.push('set-cookie', refreshed)
        })
      }
      return undefined
    } catch (err) {
      return respondJson(502, { error: 'GW_ERR_POLICY_IDP_UNREACHABLE', message: `the identity provider could not be reached: ${(err as Error).message}` }, [], 'GW_ERR_POLICY_IDP_UNREACHABLE')
    }
  }
}
