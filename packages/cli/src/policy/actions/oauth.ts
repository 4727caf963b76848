/**
 * `oauth`: log users in with one of the OAuth providers ngrok lists (amazon, facebook,
 * github, gitlab, google, linkedin, microsoft, twitch), with the user's own OAuth app.
 *
 * Each provider is a preset: its authorization, token and userinfo endpoints, the
 * scopes it needs to tell who the user is, and where its userinfo keeps the id, name
 * and email. The flow is the authorization code grant with PKCE and `state`; the code
 * is exchanged with `client_secret_post` (the one client authentication every listed
 * provider takes), and the identity comes from the userinfo endpoint with the access
 * token. The session and special paths are login-session.ts's.
 *
 * ngrok's *managed* applications (`provider` without `client_id`) are ngrok's own OAuth
 * apps, registered with each provider against ngrok's cloud; gw cannot use them, so a
 * config without `client_id` is refused, saying what to register.
 *
 * `authorization_endpoint`, `token_endpoint` and `userinfo_endpoint` (gw) replace the
 * preset's, for a self-hosted GitLab or a provider's regional endpoints.
 */
import type { ActionDefinition } from '../action.js'
import { createLoginSession, type LoginProvider } from '../login-session.js'
import { clientAuth, fetchUserinfo, readAuthzParams, readSessionConfig } from './oidc.js'

interface Preset {
  authorization: string
  token: string
  userinfo: string
  /** Scopes always asked for: what the userinfo call needs. */
  scopes: string[]
  /** Userinfo keys for the identity, first present wins. */
  id: string[]
  name: string[]
  email: string[]
  /** GitHub keeps a private email behind another call. */
  emails?: string
}

const OIDC_KEYS = { id: ['sub'], name: ['name', 'preferred_username'], email: ['email'] }

export const OAUTH_PROVIDERS: Readonly<Record<string, Preset>> = {
  amazon: {
    authorization: 'https://www.amazon.com/ap/oa', token: 'https://api.amazon.com/auth/o2/token',
    userinfo: 'https://api.amazon.com/user/profile', scopes: ['profile'], id: ['user_id'], name: ['name'], email: ['email'],
  },
  facebook: {
    authorization: 'https://www.facebook.com/v19.0/dialog/oauth', token: 'https://graph.facebook.com/v19.0/oauth/access_token',
    userinfo: 'https://graph.facebook.com/me?fields=id,name,email', scopes: ['email'], id: ['id'], name: ['name'], email: ['email'],
  },
  github: {
    authorization: 'https://github.com/login/oauth/authorize', token: 'https://github.com/login/oauth/access_token',
    userinfo: 'https://api.github.com/user', scopes: ['read:user', 'user:email'], id: ['id'], name: ['name', 'login'], email: ['email'],
    emails: 'https://api.github.com/user/emails',
  },
  gitlab: {
    authorization: 'https://gitlab.com/oauth/authorize', token: 'https://gitlab.com/oauth/token',
    userinfo: 'https://gitlab.com/oauth/userinfo', scopes: ['openid', 'profile', 'email'], ...OIDC_KEYS,
  },
  google: {
    authorization: 'https://accounts.google.com/o/oauth2/v2/auth', token: 'https://oauth2.googleapis.com/token',
    userinfo: 'https://openidconnect.googleapis.com/v1/userinfo', scopes: ['openid', 'email', 'profile'], ...OIDC_KEYS,
  },
  linkedin: {
    authorization: 'https://www.linkedin.com/oauth/v2/authorization', token: 'https://www.linkedin.com/oauth/v2/accessToken',
    userinfo: 'https://api.linkedin.com/v2/userinfo', scopes: ['openid', 'profile', 'email'], ...OIDC_KEYS,
  },
  microsoft: {
    authorization: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize', token: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    userinfo: 'https://graph.microsoft.com/oidc/userinfo', scopes: ['openid', 'profile', 'email'], ...OIDC_KEYS,
  },
  twitch: {
    authorization: 'https://id.twitch.tv/oauth2/authorize', token: 'https://id.twitch.tv/oauth2/token',
    userinfo: 'https://id.twitch.tv/oauth2/userinfo', scopes: ['openid', 'user:read:email'], ...OIDC_KEYS,
  },
}

function pick(info: Record<string, unknown>, keys: readonly string[]): string {
  for (const k of keys) {
    const v = info[k]
    if (typeof v === 'string' && v !== '') return v
    if (typeof v === 'number') return String(v)
  }
  return ''
}

export const oauth: ActionDefinition = {
  type: 'oauth',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const providerName = config.oneOf('provider', Object.keys(OAUTH_PROVIDERS).sort())
    const preset = OAUTH_PROVIDERS[providerName]!
    const givenId = config.optString('client_id')
    if (givenId === undefined || givenId === '') {
      return config.fail('client_id', `is required: without it ngrok uses its managed ${providerName} app, which exists only in ngrok's cloud; ` +
        `register an OAuth app with ${providerName}, set its redirect URI to https://<your endpoint's host>/_gw/oauth/callback, ` +
        'and give its client_id and client_secret (secrets.get works for the secret)')
    }
    const clientId: string = givenId
    const clientSecret = config.optString('client_secret')
    if (clientSecret === undefined || clientSecret === '') config.fail('client_secret', `is required with client_id: the ${providerName} app's client secret`)
    const extra = config.stringList('scopes', false)
    const scopes = [...new Set([...preset.scopes, ...extra])]
    const authzParams = readAuthzParams(config)
    const session = readSessionConfig(config, { callbackPath: '/_gw/oauth/callback', cookieName: 'gw_oauth' })
    const endpoint = (key: string, def: string): string => {
      const v = config.string(key, def)
      try {
        const u = new URL(v)
        if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme')
      } catch {
        config.fail(key, `must be an http(s) URL, got ${JSON.stringify(v)}`)
      }
      return v
    }
    const authorization = endpoint('authorization_endpoint', preset.authorization)
    const token = endpoint('token_endpoint', preset.token)
    const userinfo = endpoint('userinfo_endpoint', preset.userinfo)
    config.done()

    /** The identity in a userinfo answer, by the preset's keys; GitHub's private email from its emails call. */
    async function identityOf(claims: Record<string, unknown>, accessToken: string) {
      const sub = pick(claims, preset.id)
      if (!sub) return undefined
      let email = pick(claims, preset.email)
      if (!email && preset.emails) {
        const list = await getJson(preset.emails, accessToken).catch(() => [])
        const primary = Array.isArray(list) ? (list as Array<{ email?: string; primary?: boolean; verified?: boolean }>).find((e) => e.primary && e.verified) : undefined
        email = primary?.email ?? ''
      }
      return { sub, email, name: pick(claims, preset.name), claims }
    }

    async function getJson(url: string, accessToken: string): Promise<unknown> {
      const res = await ctx.fetch(url, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', 'user-agent': 'gw' } })
      if (!res.ok) throw new Error(`${new URL(url).host} answered ${res.status}`)
      return res.json()
    }

    const provider: LoginProvider = {
      async authorizationUrl(p) {
        const url = new URL(authorization)
        url.searchParams.set('response_type', 'code')
        url.searchParams.set('client_id', clientId)
        url.searchParams.set('redirect_uri', p.redirectUri)
        url.searchParams.set('scope', scopes.join(' '))
        url.searchParams.set('state', p.state)
        url.searchParams.set('code_challenge', p.codeChallenge)
        url.searchParams.set('code_challenge_method', 'S256')
        for (const [k, v] of authzParams) url.searchParams.set(k, v)
        return url.href
      },
      async exchange(p) {
        const form = new URLSearchParams({ grant_type: 'authorization_code', code: p.code, redirect_uri: p.redirectUri, code_verifier: p.codeVerifier })
        const headers = clientAuth('client_secret_post', clientId, clientSecret, form)
        const res = await ctx.fetch(token, { method: 'POST', headers, body: form.toString() })
        const tokens = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string }
        if (!res.ok || !tokens.access_token) {
          return { error: tokens.error ?? 'token_exchange_failed', error_description: tokens.error_description ?? `the ${providerName} token endpoint answered ${res.status}` }
        }
        const info = await getJson(userinfo, tokens.access_token)
        if (typeof info !== 'object' || info === null || Array.isArray(info)) {
          return { error: 'invalid_userinfo', error_description: `the ${providerName} userinfo endpoint did not answer with an object` }
        }
        const identity = await identityOf(info as Record<string, unknown>, tokens.access_token)
        if (!identity) return { error: 'invalid_userinfo', error_description: `the ${providerName} userinfo has no ${preset.id.join(' or ')}` }
        return { ...identity, accessToken: tokens.access_token }
      },
      async refresh(accessToken) {
        const info = await fetchUserinfo(ctx, userinfo, accessToken)
        return info ? identityOf(info, accessToken) : undefined
      },
    }
    return createLoginSession({ resultName: 'oauth', provider, clock: ctx.clock, ...session })
  },
}
