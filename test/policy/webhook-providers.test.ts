/**
 * verify-webhook for every provider gw verifies, through a real relay and the real agent:
 * a good delivery reaches the upstream with its body unchanged; a tampered body, a
 * wrong secret and (for timestamped schemes) a stale delivery get 403.
 *
 * Signatures come from the provider's official npm SDK where it can sign (stripe,
 * @octokit/webhooks-methods for GitHub, svix for Svix and Clerk, twilio); for the others,
 * which publish no signing SDK, from the construction in the provider's own docs, as a
 * provider's server would build it.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import Stripe from 'stripe'
import { sign as githubSign } from '@octokit/webhooks-methods'
import { Webhook as SvixWebhook } from 'svix'
import twilio from 'twilio'
import { compilePolicy, PolicyError } from '@gw/cli/policy/index'
import { startEchoUpstream, startPolicyTunnel, type PolicyTunnel } from './tunnel-stack.js'

const NOW = Date.now()
const SECRET = 'provider-secret-1'
const SVIX_SECRET = `whsec_${Buffer.from('a 24 byte svix key!!!!!!').toString('base64')}`
const TEAMS_SECRET = Buffer.from('teams outgoing webhook key').toString('base64')

interface Delivery { body: string; url: string; method: string; nowMs: number; contentType?: string }
type Signer = (secret: string, d: Delivery) => Promise<Record<string, string>> | Record<string, string>

const h = (algo: string, key: string | Buffer, data: string, enc: 'hex' | 'base64') => createHmac(algo, key).update(data).digest(enc)
const secs = (ms: number) => String(Math.floor(ms / 1000))

/** provider → how its server signs, and whether the scheme carries a timestamp. */
const SIGNERS: Record<string, { sign: Signer; timestamped?: boolean; secret?: string; sdk?: string; contentType?: string; unsignedBody?: boolean }> = {
  stripe: {
    sdk: 'stripe',
    timestamped: true,
    sign: (secret, d) => ({ 'stripe-signature': new Stripe('sk_test_unused').webhooks.generateTestHeaderString({ payload: d.body, secret, timestamp: Math.floor(d.nowMs / 1000) }) }),
  },
  github: { sdk: '@octokit/webhooks-methods', sign: async (secret, d) => ({ 'x-hub-signature-256': await githubSign(secret, d.body) }) },
  svix: {
    sdk: 'svix', timestamped: true, secret: SVIX_SECRET,
    sign: (secret, d) => ({ 'svix-id': 'msg_2a', 'svix-timestamp': secs(d.nowMs), 'svix-signature': new SvixWebhook(secret).sign('msg_2a', new Date(d.nowMs), d.body) }),
  },
  clerk: {
    sdk: 'svix', timestamped: true, secret: SVIX_SECRET,
    sign: (secret, d) => ({ 'svix-id': 'msg_3b', 'svix-timestamp': secs(d.nowMs), 'svix-signature': new SvixWebhook(secret).sign('msg_3b', new Date(d.nowMs), d.body) }),
  },
  twilio: {
    sdk: 'twilio', contentType: 'application/x-www-form-urlencoded',
    sign: (secret, d) => ({ 'x-twilio-signature': twilio.getExpectedTwilioSignature(secret, d.url, Object.fromEntries(new URLSearchParams(d.body))) }),
  },
  slack: { timestamped: true, sign: (s, d) => ({ 'x-slack-request-timestamp': secs(d.nowMs), 'x-slack-signature': `v0=${h('sha256', s, `v0:${secs(d.nowMs)}:${d.body}`, 'hex')}` }) },
  shopify: { sign: (s, d) => ({ 'x-shopify-hmac-sha256': h('sha256', s, d.body, 'base64') }) },
  // GitLab sends the secret itself: it proves the sender, and nothing signs the body.
  gitlab: { unsignedBody: true, sign: (s) => ({ 'x-gitlab-token': s }) },
  bitbucket: { sign: (s, d) => ({ 'x-hub-signature': `sha256=${h('sha256', s, d.body, 'hex')}` }) },
  box: {
    timestamped: true,
    sign: (s, d) => { const ts = new Date(d.nowMs).toISOString(); return { 'box-delivery-timestamp': ts, 'box-signature-primary': h('sha256', s, d.body + ts, 'base64') } },
  },
  calendly: { timestamped: true, sign: (s, d) => ({ 'calendly-webhook-signature': `t=${secs(d.nowMs)},v1=${h('sha256', s, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }) },
  circleci: { sign: (s, d) => ({ 'circleci-signature': `v1=${h('sha256', s, d.body, 'hex')}` }) },
  docusign: { sign: (s, d) => ({ 'x-docusign-signature-1': h('sha256', s, d.body, 'base64') }) },
  dropbox: { sign: (s, d) => ({ 'x-dropbox-signature': h('sha256', s, d.body, 'hex') }) },
  facebook_graph_api: { sign: (s, d) => ({ 'x-hub-signature-256': `sha256=${h('sha256', s, d.body, 'hex')}` }) },
  facebook_messenger: { sign: (s, d) => ({ 'x-hub-signature-256': `sha256=${h('sha256', s, d.body, 'hex')}` }) },
  instagram: { sign: (s, d) => ({ 'x-hub-signature-256': `sha256=${h('sha256', s, d.body, 'hex')}` }) },
  whatsapp: { sign: (s, d) => ({ 'x-hub-signature-256': `sha256=${h('sha256', s, d.body, 'hex')}` }) },
  frameio: { timestamped: true, sign: (s, d) => ({ 'x-frameio-request-timestamp': secs(d.nowMs), 'x-frameio-signature': `v0=${h('sha256', s, `v0:${secs(d.nowMs)}:${d.body}`, 'hex')}` }) },
  heroku: { sign: (s, d) => ({ 'heroku-webhook-hmac-sha256': h('sha256', s, d.body, 'base64') }) },
  hubspot: {
    timestamped: true,
    sign: (s, d) => ({ 'x-hubspot-request-timestamp': String(d.nowMs), 'x-hubspot-signature-v3': h('sha256', s, `${d.method}${d.url}${d.body}${d.nowMs}`, 'base64') }),
  },
  intercom: { sign: (s, d) => ({ 'x-hub-signature': `sha1=${h('sha1', s, d.body, 'hex')}` }) },
  launch_darkly: { sign: (s, d) => ({ 'x-ld-signature': h('sha256', s, d.body, 'hex') }) },
  microsoft_teams: { secret: TEAMS_SECRET, sign: (s, d) => ({ authorization: `HMAC ${h('sha256', Buffer.from(s, 'base64'), d.body, 'base64')}` }) },
  mux: { timestamped: true, sign: (s, d) => ({ 'mux-signature': `t=${secs(d.nowMs)},v1=${h('sha256', s, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }) },
  pagerduty: { sign: (s, d) => ({ 'x-pagerduty-signature': `v1=0000,v1=${h('sha256', s, d.body, 'hex')}` }) },
  sentry: { sign: (s, d) => ({ 'sentry-hook-signature': h('sha256', s, d.body, 'hex') }) },
  square: { sign: (s, d) => ({ 'x-square-hmacsha256-signature': h('sha256', s, d.url + d.body, 'base64') }) },
  terraform: { sign: (s, d) => ({ 'x-tfe-notification-signature': h('sha512', s, d.body, 'hex') }) },
  tiktok: { timestamped: true, sign: (s, d) => ({ 'tiktok-signature': `t=${secs(d.nowMs)},s=${h('sha256', s, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }) },
  twitter: { sign: (s, d) => ({ 'x-twitter-webhooks-signature': `sha256=${h('sha256', s, d.body, 'base64')}` }) },
  typeform: { sign: (s, d) => ({ 'typeform-signature': `sha256=${h('sha256', s, d.body, 'base64')}` }) },
  webex: { sign: (s, d) => ({ 'x-spark-signature': h('sha1', s, d.body, 'hex') }) },
  xero: { sign: (s, d) => ({ 'x-xero-signature': h('sha256', s, d.body, 'base64') }) },
  zoom: { timestamped: true, sign: (s, d) => ({ 'x-zm-request-timestamp': secs(d.nowMs), 'x-zm-signature': `v0=${h('sha256', s, `v0:${secs(d.nowMs)}:${d.body}`, 'hex')}` }) },
}

describe('verify-webhook providers through the real agent', () => {
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>
  let tunnel: PolicyTunnel

  before(async () => {
    upstream = await startEchoUpstream('hooks')
    const rules = Object.entries(SIGNERS).map(([provider, s]) => ({
      expressions: [`req.url.path == '/${provider}'`],
      actions: [{ type: 'verify-webhook', config: { provider, secret: s.secret ?? SECRET } }],
    }))
    tunnel = await startPolicyTunnel(compilePolicy({ on_http_request: rules }, { now: () => NOW }), upstream.url)
  })
  after(async () => {
    await tunnel.close()
    await upstream.close()
  })

  for (const [provider, s] of Object.entries(SIGNERS)) {
    it(`${provider}${s.sdk ? ` (signed by ${s.sdk})` : ''}: good 200, ${s.unsignedBody ? '' : 'tampered, '}wrong secret${s.timestamped ? ', stale' : ''} 403`, async () => {
      const contentType = s.contentType ?? 'application/json'
      const body = contentType === 'application/json' ? JSON.stringify({ event: 'paid', provider, note: 'héllo' }) : `AccountSid=AC1&Body=h%C3%A9llo&From=%2B15550001&To=%2B15550002`
      const path = `/${provider}`
      const d: Delivery = { body, url: `http://${tunnel.host}${path}`, method: 'POST', nowMs: NOW }
      const secret = s.secret ?? SECRET
      const send = async (headers: Record<string, string>, sent = body) =>
        tunnel.fetch(path, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body: sent })

      const good = await send(await s.sign(secret, d))
      assert.equal(good.status, 200, good.text)
      assert.equal(JSON.parse(good.text).body, body)

      if (!s.unsignedBody) {
        const tampered = await send(await s.sign(secret, d), body.replace('paid', 'PAID').replace('AC1', 'AC2'))
        assert.equal(tampered.status, 403)
        assert.match(JSON.parse(tampered.text).message, new RegExp(`^${provider} webhook: `))
      }

      const wrongSecret = provider === 'microsoft_teams' ? Buffer.from('another key').toString('base64')
        : s.secret === SVIX_SECRET ? `whsec_${Buffer.from('another 24 byte svix key').toString('base64')}` : 'not-the-secret'
      assert.equal((await send(await s.sign(wrongSecret, d))).status, 403)

      if (s.timestamped) {
        const stale = await send(await s.sign(secret, { ...d, nowMs: NOW - 10 * 60_000 }))
        assert.equal(stale.status, 403)
        assert.match(JSON.parse(stale.text).message, /timestamp is outside the tolerance/)
      }
      assert.equal((await send({})).status, 403)
    })
  }

  it('twilio JSON deliveries: bodySHA256 in the URL, signed by the twilio SDK', async () => {
    const body = JSON.stringify({ event: 'message', sid: 'SM1' })
    const hash = createHash('sha256').update(body).digest('hex')
    assert.equal(twilio.getExpectedBodyHash(body), hash)
    const path = `/twilio?bodySHA256=${hash}`
    const url = `http://${tunnel.host}${path}`
    const signature = twilio.getExpectedTwilioSignature(SECRET, url, {})
    const ok = await tunnel.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-twilio-signature': signature }, body })
    assert.equal(ok.status, 200, ok.text)
    assert.ok(twilio.validateRequestWithBody(SECRET, signature, url, body), 'the SDK agrees')
    const tampered = await tunnel.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-twilio-signature': signature }, body: body.replace('SM1', 'SM2') })
    assert.equal(tampered.status, 403)
  })
})

describe('verify-webhook providers gw does not verify', () => {
  for (const provider of ['sns', 'sendgrid', 'zendesk']) {
    it(`${provider} is refused at load with the reason, not let through`, () => {
      assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'verify-webhook', config: { provider, secret: 's' } }] }] }),
        (err: Error) => err instanceof PolicyError && new RegExp(`"${provider}" is one of ngrok's providers, but`).test(err.message))
    })
  }
  it('an unknown provider lists the ones gw verifies', () => {
    assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'verify-webhook', config: { provider: 'githup', secret: 's' } }] }] }),
      (err: Error) => /must be one of the providers gw verifies/.test(err.message) && /github/.test(err.message))
  })
})
