/**
 * verify-webhook for every provider gw verifies, through a real relay and the real agent:
 * a good delivery reaches the upstream with its body unchanged; a tampered body, a
 * wrong secret and (for timestamped schemes) a stale delivery get 403.
 *
 * The oracle, per provider (`oracle` in the table below):
 * - `sdk-signs`: the provider's official npm SDK makes the signature (stripe,
 *   @octokit/webhooks-methods, svix, twilio, coinbase-commerce-node, modern-treasury,
 *   orb-billing, @hygraph/utils, @contentful/node-apps-toolkit, @hubspot/api-client);
 * - `sdk-verifies`: the SDK has no signing function, so the signature is built as the
 *   provider's docs describe and the SDK's own verifier must accept that same delivery
 *   (pusher, @linear/sdk, connect-sdk-nodejs for Worldline, @sendgrid/eventwebhook,
 *   @mux/mux-node, square, @slack/bolt, box-node-sdk, @shopify/shopify-api, @zoom/rivet;
 *   Clerk's deliveries, signed by svix, are also accepted by @clerk/backend): the
 *   oracle is still not gw's code;
 * - `docs`: the provider publishes no npm SDK that signs or verifies; the signature is
 *   built from the construction in the provider's own docs, as its server would.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto'
import Stripe from 'stripe'
import coinbase from 'coinbase-commerce-node'
import ModernTreasury from 'modern-treasury'
import Orb from 'orb-billing'
import Pusher from 'pusher'
import { LinearWebhookClient } from '@linear/sdk/webhooks'
import { generateWebhookSignature as hygraphSign, verifyWebhookSignature as hygraphVerify } from '@hygraph/utils'
import { signRequest as contentfulSign, verifyRequest as contentfulVerify } from '@contentful/node-apps-toolkit'
import connect from 'connect-sdk-nodejs'
import sendgridWebhook from '@sendgrid/eventwebhook'
import plivo from 'plivo'
import { sign as githubSign } from '@octokit/webhooks-methods'
import { Webhook as SvixWebhook } from 'svix'
import twilio from 'twilio'
import { Signature as HubSpotSignature } from '@hubspot/api-client'
import Mux from '@mux/mux-node'
import { WebhooksHelper as SquareWebhooks } from 'square'
import { verifySlackRequest } from '@slack/bolt'
import { WebhooksManager as BoxWebhooks } from 'box-node-sdk/managers/webhooks'
import '@shopify/shopify-api/adapters/node'
import { shopifyApi, ApiVersion } from '@shopify/shopify-api'
import { AwsLambdaReceiver as ZoomLambdaReceiver } from '@zoom/rivet/meetings'
import { verifyWebhook as clerkVerify } from '@clerk/backend/webhooks'
import { IncomingMessage, ServerResponse } from 'node:http'
import { compilePolicy, PolicyError } from '@gw/cli/policy/index'
import { startEchoUpstream, startPolicyTunnel, type PolicyTunnel } from './tunnel-stack.js'

const NOW = Date.now()
const SECRET = 'provider-secret-1'
const SVIX_SECRET = `whsec_${Buffer.from('a 24 byte svix key!!!!!!').toString('base64')}`
const TEAMS_SECRET = Buffer.from('teams outgoing webhook key').toString('base64')
/** Contentful signing secrets are exactly 64 characters (its toolkit checks). */
const CONTENTFUL_SECRET = 'contentful-signing-secret-'.padEnd(64, '0123456789abcdef')
const CONTENTFUL_WRONG = 'w'.repeat(64)

/** SendGrid signs with its private key; the action's secret is the public verification key SendGrid shows (base64 DER). */
function sendgridKeyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return { verificationKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), privateKey }
}
const SENDGRID = sendgridKeyPair()
const SENDGRID_OTHER = sendgridKeyPair()
const sendgridPrivate = new Map<string, KeyObject>([[SENDGRID.verificationKey, SENDGRID.privateKey], [SENDGRID_OTHER.verificationKey, SENDGRID_OTHER.privateKey]])

interface Delivery { body: string; url: string; target: string; method: string; nowMs: number; contentType?: string }
/** @shopify/shopify-api's webhook validation, as an app with this secret runs it on a Node request. */
async function shopifyValidates(apiSecretKey: string, body: string, headers: Record<string, string>): Promise<boolean> {
  const shopify = shopifyApi({ apiKey: 'unused', apiSecretKey, scopes: [], hostName: 'app.example', apiVersion: ApiVersion.October26, isEmbeddedApp: false, logger: { level: 0 } })
  const req = new IncomingMessage(null as never)
  req.headers = headers
  req.method = 'POST'
  req.url = '/shopify'
  return (await shopify.webhooks.validate({ rawBody: body, rawRequest: req, rawResponse: new ServerResponse(req) })).valid
}

/** @zoom/rivet's Lambda receiver: verifies a Zoom delivery and answers endpoint.url_validation. */
async function zoomReceiver(webhooksSecretToken: string, body: string, headers: Record<string, string>): Promise<{ statusCode: number; body: string }> {
  const handler = new ZoomLambdaReceiver({ webhooksSecretToken }).start() as (event: unknown, context: unknown) => Promise<{ statusCode: number; body: string }>
  const debug = console.debug
  console.debug = () => {} // the receiver logs every event
  try {
    return await handler({ body, headers, isBase64Encoded: false }, {})
  } finally {
    console.debug = debug
  }
}

type Signer = (secret: string, d: Delivery) => Promise<Record<string, string>> | Record<string, string>
type Oracle = 'sdk-signs' | 'sdk-verifies' | 'docs'

const h = (algo: string, key: string | Buffer, data: string, enc: 'hex' | 'base64') => createHmac(algo, key).update(data).digest(enc)
const secs = (ms: number) => String(Math.floor(ms / 1000))

interface ProviderCase {
  sign: Signer
  /** What makes or checks the signature (see the file's comment); `sdk` names the package. */
  oracle?: Oracle
  sdk?: string
  timestamped?: boolean
  secret?: string
  /** Another secret of the same shape, for the wrong-secret delivery. */
  wrongSecret?: string
  contentType?: string
  unsignedBody?: boolean
  /** The provider's own body shape, when the scheme reads fields inside it. */
  body?: (nowMs: number) => string
  /** For a signature inside the body (Mailgun): the signed body; `sign` then adds no header. */
  signedBody?: (secret: string, d: Delivery) => string
  /** How to tamper with a delivery, when the provider signs only part of the body. */
  tamper?: (body: string) => string
}

/** provider → how its server signs, and whether the scheme carries a timestamp. */
const SIGNERS: Record<string, ProviderCase> = {
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
    sign: async (signingSecret, d) => {
      const headers = { 'svix-id': 'msg_3b', 'svix-timestamp': secs(d.nowMs), 'svix-signature': new SvixWebhook(signingSecret).sign('msg_3b', new Date(d.nowMs), d.body) }
      // Clerk's own verifier (@clerk/backend) accepts what svix signs; it checks the age by its own clock.
      if (Math.abs(d.nowMs - Date.now()) < 60_000) await clerkVerify(new Request(d.url, { method: 'POST', headers, body: d.body }), { signingSecret })
      return headers
    },
  },
  twilio: {
    sdk: 'twilio', contentType: 'application/x-www-form-urlencoded',
    sign: (secret, d) => ({ 'x-twilio-signature': twilio.getExpectedTwilioSignature(secret, d.url, Object.fromEntries(new URLSearchParams(d.body))) }),
  },
  coinbase: {
    sdk: 'coinbase-commerce-node',
    sign: (secret, d) => ({ 'x-cc-webhook-signature': coinbase.Webhook.computeSignature(d.body, secret) }),
  },
  modern_treasury: {
    sdk: 'modern-treasury',
    sign: (secret, d) => ({ 'x-signature': new ModernTreasury({ apiKey: 'unused', organizationID: 'unused' }).webhooks.getSignature(d.body, { key: secret }) }),
  },
  orb: {
    oracle: 'sdk-verifies', sdk: 'orb-billing', timestamped: true,
    sign: (secret, d) => {
      // Orb's timestamp header is ISO 8601 without a zone (UTC); it signs `v1:<timestamp>:<body>`.
      const timestamp = new Date(d.nowMs).toISOString().replace('Z', '')
      const headers = { 'x-orb-timestamp': timestamp, 'x-orb-signature': `v1=${h('sha256', secret, `v1:${timestamp}:${d.body}`, 'hex')}` }
      if (Math.abs(d.nowMs - Date.now()) < 60_000) new Orb({ apiKey: 'unused' }).webhooks.verifySignature(d.body, headers, secret)
      return headers
    },
  },
  graphcms: {
    sdk: '@hygraph/utils', timestamped: true,
    sign: (secret, d) => {
      // The SDK signs at its own Date.now(); a stale delivery is built as the SDK builds one, and the SDK must accept its signature.
      if (Math.abs(d.nowMs - Date.now()) < 60_000) return { 'gcms-signature': hygraphSign({ rawPayload: d.body, secret, environmentName: 'master' }) }
      const payload = JSON.stringify({ Body: d.body, EnvironmentName: 'master', TimeStamp: d.nowMs })
      const signature = `sign=${h('sha256', secret, payload, 'base64')}, env=master, t=${d.nowMs}`
      assert.ok(hygraphVerify({ rawPayload: d.body, signature, secret }), '@hygraph/utils accepts the signature')
      return { 'gcms-signature': signature }
    },
  },
  contentful: {
    sdk: '@contentful/node-apps-toolkit', timestamped: true, secret: CONTENTFUL_SECRET, wrongSecret: CONTENTFUL_WRONG,
    sign: (secret, d) => {
      const headers = { 'x-contentful-topic': 'ContentManagement.Entry.publish', 'content-type': d.contentType ?? 'application/json' }
      const signed = contentfulSign(secret, { method: 'POST', path: d.target, headers, body: d.body }, d.nowMs)
      return { ...headers, ...signed }
    },
  },
  pusher: {
    oracle: 'sdk-verifies', sdk: 'pusher',
    sign: (secret, d) => {
      const headers = { 'x-pusher-key': 'app-key', 'x-pusher-signature': h('sha256', secret, d.body, 'hex') }
      const hook = new Pusher({ appId: '1', key: 'app-key', secret, cluster: 'eu' }).webhook({ headers: { ...headers, 'content-type': 'application/json' }, rawBody: d.body })
      assert.ok(hook.isValid(), 'the pusher SDK accepts the delivery')
      return headers
    },
  },
  linear: {
    oracle: 'sdk-verifies', sdk: '@linear/sdk', timestamped: true,
    // Linear's replay check reads webhookTimestamp (ms) inside the signed body.
    body: (nowMs) => JSON.stringify({ action: 'create', type: 'Issue', data: { title: 'héllo', state: 'paid' }, webhookTimestamp: nowMs }),
    sign: (secret, d) => {
      const signature = h('sha256', secret, d.body, 'hex')
      if (Math.abs(d.nowMs - Date.now()) < 30_000) assert.ok(new LinearWebhookClient(secret).verify(Buffer.from(d.body), signature), '@linear/sdk accepts the delivery')
      return { 'linear-signature': signature }
    },
  },
  worldline: {
    oracle: 'sdk-verifies', sdk: 'connect-sdk-nodejs',
    body: () => JSON.stringify({ apiVersion: 'v1', id: 'evt-1', created: '2026-01-01T00:00:00.000+0000', merchantId: '1', type: 'payment.paid', note: 'héllo' }),
    sign: async (secret, d) => {
      const headers = { 'x-gcs-keyid': 'key-1', 'x-gcs-signature': h('sha256', secret, d.body, 'base64') }
      const event = await connect.webhooks.v1.init({ getSecretKey: async () => secret }).unmarshal(d.body, headers)
      assert.equal(event.type, 'payment.paid', 'connect-sdk-nodejs accepts the delivery')
      return headers
    },
  },
  sendgrid: {
    oracle: 'sdk-verifies', sdk: '@sendgrid/eventwebhook', timestamped: true,
    secret: SENDGRID.verificationKey, wrongSecret: SENDGRID_OTHER.verificationKey,
    body: () => JSON.stringify([{ email: 'a@example.com', event: 'paid', note: 'héllo', sg_event_id: 'e1' }]),
    sign: (verificationKey, d) => {
      const timestamp = secs(d.nowMs)
      const signer = createSign('sha256')
      signer.update(timestamp + d.body)
      const signature = signer.sign(sendgridPrivate.get(verificationKey)!).toString('base64')
      const ew = new sendgridWebhook.EventWebhook()
      assert.ok(ew.verifySignature(ew.convertPublicKeyToECDSA(verificationKey), d.body, signature, timestamp), '@sendgrid/eventwebhook accepts the delivery')
      return { 'x-twilio-email-event-webhook-signature': signature, 'x-twilio-email-event-webhook-timestamp': timestamp }
    },
  },
  plivo: {
    oracle: 'sdk-verifies', sdk: 'plivo', contentType: 'application/x-www-form-urlencoded',
    sign: (secret, d) => {
      // V3: base64 HMAC-SHA256 of `<url>?<form fields sorted, as key+value>.<nonce>` for a form POST without a query.
      const nonce = '05429567804466091622'
      const fields = [...new URLSearchParams(d.body)].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => k + v).join('')
      const signature = h('sha256', secret, `${d.url}?${fields}.${nonce}`, 'base64')
      assert.ok(plivo.validateV3Signature('POST', d.url, nonce, secret, signature, Object.fromEntries(new URLSearchParams(d.body))), 'the plivo SDK accepts the delivery')
      return { 'x-plivo-signature-v3': signature, 'x-plivo-signature-v3-nonce': nonce }
    },
  },
  zendesk: {
    timestamped: true,
    sign: (s, d) => {
      const ts = new Date(d.nowMs).toISOString().replace(/\.\d{3}Z$/, 'Z')
      return { 'x-zendesk-webhook-signature-timestamp': ts, 'x-zendesk-webhook-signature': h('sha256', s, ts + d.body, 'base64') }
    },
  },
  mongodb: { sign: (s, d) => ({ 'x-mms-signature': h('sha1', s, d.body, 'base64') }) },
  castle: { sign: (s, d) => ({ 'x-castle-signature': h('sha256', s, d.body, 'base64') }) },
  jira: { sign: (s, d) => ({ 'x-hub-signature': `sha256=${h('sha256', s, d.body, 'hex')}` }) },
  buildkite: {
    timestamped: true,
    sign: (s, d) => ({ 'x-buildkite-signature': `timestamp=${secs(d.nowMs)},signature=${h('sha256', s, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }),
  },
  mailgun: {
    timestamped: true,
    // Mailgun signs timestamp + token, inside the body beside the event data (which it does not sign).
    sign: () => ({}),
    signedBody: (s, d) => {
      const timestamp = secs(d.nowMs)
      const token = 'e0b5477167110d68991efc6b9f89f0a11066af27834600e123'
      return JSON.stringify({ signature: { timestamp, token, signature: h('sha256', s, timestamp + token, 'hex') }, 'event-data': { event: 'delivered', note: 'héllo' } })
    },
    tamper: (body) => body.replace('e0b5477167110d', 'f0b5477167110d'),
  },
  autodesk: { sign: (s, d) => ({ 'x-adsk-signature': `sha1hash=${h('sha1', s, d.body, 'hex')}` }) },
  sonatype: { sign: (s, d) => ({ 'x-nexus-webhook-signature': h('sha1', s, d.body, 'hex') }) },
  aftership: { sign: (s, d) => ({ 'aftership-hmac-sha256': h('sha256', s, d.body, 'base64') }) },
  chargify: { sign: (s, d) => ({ 'x-chargify-webhook-signature-hmac-sha-256': h('sha256', s, d.body, 'hex') }) },
  brex: {
    // Brex publishes no npm SDK; it signs with the Standard Webhooks scheme (webhook-id, -timestamp,
    // -signature; a base64 secret without whsec_), signed here by the svix SDK.
    sdk: 'svix', timestamped: true, secret: SVIX_SECRET.slice(6), wrongSecret: Buffer.from('another 24 byte brex key').toString('base64'),
    sign: (secret, d) => ({ 'webhook-id': 'msg_brex1', 'webhook-timestamp': secs(d.nowMs), 'webhook-signature': new SvixWebhook(secret).sign('msg_brex1', new Date(d.nowMs), d.body) }),
  },
  vmware: {
    // Workspace ONE sends HTTP Basic credentials; ngrok's secret is `<username>::<password>`.
    unsignedBody: true, secret: 'hook-user::p@ss:word', wrongSecret: 'hook-user::other',
    sign: (secret) => ({ authorization: `Basic ${Buffer.from(secret.replace('::', ':')).toString('base64')}` }),
  },
  alchemy: { sign: (s, d) => ({ 'x-alchemy-signature': h('sha256', s, d.body, 'hex') }) },
  clearbit: { sign: (s, d) => ({ 'x-request-signature': `sha1=${h('sha1', s, d.body, 'hex')}` }) },
  trendmicro_conformity: { sign: (s, d) => ({ 'x-trendmicro-signature': h('sha256', s, d.body, 'hex') }) },
  airship: {
    // Open Channel webhooks: X-UA-SIGNATURE is hex HMAC-SHA256 of `<X-UA-TIMESTAMP>:<body>`.
    timestamped: true,
    sign: (s, d) => ({ 'x-ua-timestamp': secs(d.nowMs), 'x-ua-signature': h('sha256', s, `${secs(d.nowMs)}:${d.body}`, 'hex') }),
  },
  bolt: { sign: (s, d) => ({ 'x-bolt-hmac-sha256': h('sha256', s, d.body, 'base64') }) },
  mailchimp: {
    // Mandrill posts mandrill_events as a form field; it signs the URL and the sorted fields.
    contentType: 'application/x-www-form-urlencoded',
    body: () => new URLSearchParams({ mandrill_events: JSON.stringify([{ event: 'paid', msg: { subject: 'héllo' } }]) }).toString(),
    sign: (s, d) => ({ 'x-mandrill-signature': h('sha1', s, d.url + [...new URLSearchParams(d.body)].map(([k, v]) => k + v).join(''), 'base64') }),
  },
  go1: {
    // Go1's verifier (go1com/webhook-verifier-js) is not on the npm registry; built as its guide says.
    timestamped: true,
    sign: (s, d) => ({ 'go1-signature': `t=${secs(d.nowMs)},v1=${h('sha256', s, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }),
  },
  hostedhooks: {
    timestamped: true,
    sign: (s, d) => ({ 'hostedhooks-signature': `t=${secs(d.nowMs)},s=${h('sha256', s, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }),
  },
  pinwheel: {
    // Pinwheel signs x-timestamp but documents no age check, so there is no stale case.
    sign: (s, d) => ({ 'x-timestamp': secs(d.nowMs), 'x-pinwheel-signature': `v2=${h('sha256', s, `v2:${secs(d.nowMs)}:${d.body}`, 'hex')}` }),
  },
  signal_sciences: { sign: (s, d) => ({ 'x-sigsci-signature': h('sha256', s, d.body, 'hex') }) },
  slack: {
    oracle: 'sdk-verifies', sdk: '@slack/bolt', timestamped: true,
    sign: (signingSecret, d) => {
      const headers = { 'x-slack-request-timestamp': secs(d.nowMs), 'x-slack-signature': `v0=${h('sha256', signingSecret, `v0:${secs(d.nowMs)}:${d.body}`, 'hex')}` }
      // verifySlackRequest throws when the signature is wrong or the timestamp older than 5 minutes at nowMilliseconds.
      verifySlackRequest({ signingSecret, body: d.body, headers: { ...headers, 'x-slack-request-timestamp': Number(headers['x-slack-request-timestamp']) }, nowMilliseconds: d.nowMs })
      return headers
    },
  },
  shopify: {
    oracle: 'sdk-verifies', sdk: '@shopify/shopify-api',
    sign: async (secret, d) => {
      const headers = {
        'x-shopify-hmac-sha256': h('sha256', secret, d.body, 'base64'), 'x-shopify-topic': 'orders/create', 'x-shopify-api-version': ApiVersion.October26,
        'x-shopify-shop-domain': 'shop-1.myshopify.com', 'x-shopify-webhook-id': 'wh-1', 'x-shopify-event-id': 'ev-1', 'x-shopify-triggered-at': new Date(d.nowMs).toISOString(),
      }
      assert.ok(await shopifyValidates(secret, d.body, headers), '@shopify/shopify-api accepts the delivery')
      return headers
    },
  },
  // GitLab sends the secret itself: it proves the sender, and nothing signs the body.
  gitlab: { unsignedBody: true, sign: (s) => ({ 'x-gitlab-token': s }) },
  bitbucket: { sign: (s, d) => ({ 'x-hub-signature': `sha256=${h('sha256', s, d.body, 'hex')}` }) },
  box: {
    oracle: 'sdk-verifies', sdk: 'box-node-sdk', timestamped: true,
    sign: async (key, d) => {
      const ts = new Date(d.nowMs).toISOString().replace(/\.\d{3}Z$/, 'Z')
      const headers = { 'box-delivery-timestamp': ts, 'box-signature-version': '1', 'box-signature-algorithm': 'HmacSHA256', 'box-signature-primary': h('sha256', key, d.body + ts, 'base64') }
      // validateMessage checks the age by its own clock (at most 10 minutes), so only a fresh delivery can be put to it.
      if (Math.abs(d.nowMs - Date.now()) < 60_000) assert.ok(await BoxWebhooks.validateMessage(d.body, headers, key), 'box-node-sdk accepts the delivery')
      return headers
    },
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
    sdk: '@hubspot/api-client', timestamped: true,
    sign: (clientSecret, d) => {
      const options = { clientSecret, requestBody: d.body, url: d.url, method: d.method, timestamp: d.nowMs }
      const signature = HubSpotSignature.getSignature(d.method, 'v3', { ...options, signature: '' })
      // isValid checks the timestamp against its own clock, so only a fresh delivery can be put to it.
      if (Math.abs(d.nowMs - Date.now()) < 60_000) assert.ok(HubSpotSignature.isValid({ ...options, signature, signatureVersion: 'v3' }), '@hubspot/api-client accepts the delivery')
      return { 'x-hubspot-request-timestamp': String(d.nowMs), 'x-hubspot-signature-v3': signature }
    },
  },
  intercom: { sign: (s, d) => ({ 'x-hub-signature': `sha1=${h('sha1', s, d.body, 'hex')}` }) },
  launch_darkly: { sign: (s, d) => ({ 'x-ld-signature': h('sha256', s, d.body, 'hex') }) },
  microsoft_teams: { secret: TEAMS_SECRET, sign: (s, d) => ({ authorization: `HMAC ${h('sha256', Buffer.from(s, 'base64'), d.body, 'base64')}` }) },
  mux: {
    oracle: 'sdk-verifies', sdk: '@mux/mux-node', timestamped: true,
    sign: async (secret, d) => {
      const headers = { 'mux-signature': `t=${secs(d.nowMs)},v1=${h('sha256', secret, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }
      // verifySignature throws on a mismatch, and on a timestamp older than 5 minutes by its own clock.
      if (Math.abs(d.nowMs - Date.now()) < 60_000) await new Mux({ tokenId: 'unused', tokenSecret: 'unused' }).webhooks.verifySignature(d.body, headers, secret)
      return headers
    },
  },
  pagerduty: { sign: (s, d) => ({ 'x-pagerduty-signature': `v1=0000,v1=${h('sha256', s, d.body, 'hex')}` }) },
  sentry: { sign: (s, d) => ({ 'sentry-hook-signature': h('sha256', s, d.body, 'hex') }) },
  square: {
    oracle: 'sdk-verifies', sdk: 'square',
    sign: async (signatureKey, d) => {
      const signature = h('sha256', signatureKey, d.url + d.body, 'base64')
      assert.ok(await SquareWebhooks.verifySignature({ requestBody: d.body, signatureHeader: signature, signatureKey, notificationUrl: d.url }), 'the square SDK accepts the delivery')
      return { 'x-square-hmacsha256-signature': signature }
    },
  },
  terraform: { sign: (s, d) => ({ 'x-tfe-notification-signature': h('sha512', s, d.body, 'hex') }) },
  tiktok: { timestamped: true, sign: (s, d) => ({ 'tiktok-signature': `t=${secs(d.nowMs)},s=${h('sha256', s, `${secs(d.nowMs)}.${d.body}`, 'hex')}` }) },
  twitter: { sign: (s, d) => ({ 'x-twitter-webhooks-signature': `sha256=${h('sha256', s, d.body, 'base64')}` }) },
  typeform: { sign: (s, d) => ({ 'typeform-signature': `sha256=${h('sha256', s, d.body, 'base64')}` }) },
  webex: { sign: (s, d) => ({ 'x-spark-signature': h('sha1', s, d.body, 'hex') }) },
  xero: { sign: (s, d) => ({ 'x-xero-signature': h('sha256', s, d.body, 'base64') }) },
  zoom: {
    oracle: 'sdk-verifies', sdk: '@zoom/rivet', timestamped: true,
    sign: async (s, d) => {
      const headers = { 'x-zm-request-timestamp': secs(d.nowMs), 'x-zm-signature': `v0=${h('sha256', s, `v0:${secs(d.nowMs)}:${d.body}`, 'hex')}` }
      // rivet checks the signature (not the age) and answers 200 for an event it accepts.
      assert.equal((await zoomReceiver(s, d.body, headers)).statusCode, 200, '@zoom/rivet accepts the delivery')
      return headers
    },
  },
}

describe('the SDK oracles can say no', () => {
  // The oracles above only ever see good deliveries; each must refuse one signed with another key.
  const body = JSON.stringify({ event: 'paid', note: 'héllo' })
  const url = 'http://hooks.example/p'
  const now = Date.now()
  it('@hubspot/api-client, @mux/mux-node, square, @slack/bolt, box-node-sdk, @shopify/shopify-api, @zoom/rivet and @clerk/backend refuse a wrongly keyed delivery', async () => {
    const wrong = 'not-the-secret'
    const v3 = HubSpotSignature.getSignature('POST', 'v3', { clientSecret: wrong, requestBody: body, url, timestamp: now, signature: '' })
    assert.equal(HubSpotSignature.isValid({ clientSecret: SECRET, requestBody: body, url, method: 'POST', timestamp: now, signature: v3, signatureVersion: 'v3' }), false)
    const t = secs(now)
    await assert.rejects(new Mux({ tokenId: 'unused', tokenSecret: 'unused' }).webhooks.verifySignature(body, { 'mux-signature': `t=${t},v1=${h('sha256', wrong, `${t}.${body}`, 'hex')}` }, SECRET))
    assert.equal(await SquareWebhooks.verifySignature({ requestBody: body, signatureHeader: h('sha256', wrong, url + body, 'base64'), signatureKey: SECRET, notificationUrl: url }), false)
    assert.throws(() => verifySlackRequest({ signingSecret: SECRET, body, headers: { 'x-slack-request-timestamp': Number(t), 'x-slack-signature': `v0=${h('sha256', wrong, `v0:${t}:${body}`, 'hex')}` }, nowMilliseconds: now }))
    const ts = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z')
    assert.equal(await BoxWebhooks.validateMessage(body, { 'box-delivery-timestamp': ts, 'box-signature-version': '1', 'box-signature-algorithm': 'HmacSHA256', 'box-signature-primary': h('sha256', wrong, body + ts, 'base64') }, SECRET), false)
    assert.equal(await shopifyValidates(SECRET, body, {
      'x-shopify-hmac-sha256': h('sha256', wrong, body, 'base64'), 'x-shopify-topic': 'orders/create', 'x-shopify-api-version': ApiVersion.October26,
      'x-shopify-shop-domain': 'shop-1.myshopify.com', 'x-shopify-webhook-id': 'wh-1', 'x-shopify-event-id': 'ev-1', 'x-shopify-triggered-at': new Date(now).toISOString(),
    }), false)
    assert.equal((await zoomReceiver(SECRET, body, { 'x-zm-request-timestamp': t, 'x-zm-signature': `v0=${h('sha256', wrong, `v0:${t}:${body}`, 'hex')}` })).statusCode, 400)
    const other = `whsec_${Buffer.from('another 24 byte svix key').toString('base64')}`
    const svixHeaders = { 'svix-id': 'msg_x', 'svix-timestamp': t, 'svix-signature': new SvixWebhook(other).sign('msg_x', new Date(now), body) }
    await assert.rejects(clerkVerify(new Request(url, { method: 'POST', headers: svixHeaders, body }), { signingSecret: SVIX_SECRET }))
  })
})

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
    const oracle = s.oracle ?? (s.sdk ? 'sdk-signs' : 'docs')
    it(`${provider} (${oracle}${s.sdk ? `: ${s.sdk}` : ''}): good 200, ${s.unsignedBody ? '' : 'tampered, '}wrong secret${s.timestamped ? ', stale' : ''} ${provider === 'xero' ? 401 : 403}`, async () => {
      const contentType = s.contentType ?? 'application/json'
      // Xero's intent-to-receive check wants 401 for a bad signature; every other provider gets 403.
      const refused = provider === 'xero' ? 401 : 403
      const bodyAt = (nowMs: number) => s.body?.(nowMs)
        ?? (contentType === 'application/json' ? JSON.stringify({ event: 'paid', provider, note: 'héllo' }) : `AccountSid=AC1&Body=h%C3%A9llo&From=%2B15550001&To=%2B15550002`)
      const body = bodyAt(NOW)
      const path = `/${provider}`
      const at = (nowMs: number): Delivery => ({ body: bodyAt(nowMs), url: `http://${tunnel.host}${path}`, target: path, method: 'POST', nowMs, contentType })
      const d = at(NOW)
      const secret = s.secret ?? SECRET
      const send = async (headers: Record<string, string>, sent = body) =>
        tunnel.fetch(path, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body: sent })

      const deliver = async (key: string, at: Delivery) => s.signedBody
        ? { headers: {}, body: s.signedBody(key, at) }
        : { headers: await s.sign(key, at), body: at.body }

      const good = await deliver(secret, d)
      const ok = await send(good.headers, good.body)
      assert.equal(ok.status, 200, ok.text)
      assert.equal(JSON.parse(ok.text).body, good.body)

      if (!s.unsignedBody) {
        const tamper = s.tamper ?? ((b: string) => b.replace('paid', 'PAID').replace('AC1', 'AC2'))
        assert.notEqual(tamper(good.body), good.body)
        const tampered = await send(good.headers, tamper(good.body))
        assert.equal(tampered.status, refused)
        assert.match(JSON.parse(tampered.text).message, new RegExp(`^${provider} webhook: `))
      }

      const wrongSecret = s.wrongSecret ?? (provider === 'microsoft_teams' ? Buffer.from('another key').toString('base64')
        : s.secret === SVIX_SECRET ? `whsec_${Buffer.from('another 24 byte svix key').toString('base64')}` : 'not-the-secret')
      const bad = await deliver(wrongSecret, d)
      const wrong = await send(bad.headers, bad.body)
      assert.equal(wrong.status, refused)
      assert.match(JSON.parse(wrong.text).message, new RegExp(`^${provider} webhook: `))

      if (s.timestamped) {
        // Older than any provider's tolerance (Box allows 10 minutes).
        const old = await deliver(secret, at(NOW - 11 * 60_000))
        const stale = await send(old.headers, old.body)
        assert.equal(stale.status, refused)
        assert.match(JSON.parse(stale.text).message, /timestamp is outside the tolerance/)
      }
      assert.equal((await send({})).status, refused)
    })
  }

  it('contentful: a query string and extra signed headers, normalised as @contentful/node-apps-toolkit signs them', async () => {
    const body = JSON.stringify({ sys: { id: 'entry-1', type: 'Entry' }, fields: { title: { 'en-US': 'héllo wörld' } } })
    const target = '/contentful?space=s1&env=master'
    const headers = { 'x-contentful-topic': 'ContentManagement.Entry.publish', 'x-contentful-webhook-name': 'gw test', 'content-type': 'application/json' }
    const signed = contentfulSign(CONTENTFUL_SECRET, { method: 'POST', path: target, headers, body }, NOW)
    assert.ok(contentfulVerify(CONTENTFUL_SECRET, { method: 'POST', path: target, headers: { ...headers, ...signed }, body }, 0), 'the toolkit accepts it')
    const ok = await tunnel.fetch(target, { method: 'POST', headers: { ...headers, ...signed }, body })
    assert.equal(ok.status, 200, ok.text)
    assert.equal(JSON.parse(ok.text).body, body)
    // A signed header changed on the way is a mismatch; an unsigned one is not looked at.
    const changed = await tunnel.fetch(target, { method: 'POST', headers: { ...headers, ...signed, 'x-contentful-topic': 'ContentManagement.Entry.delete' }, body })
    assert.equal(changed.status, 403)
    const other = await tunnel.fetch(target, { method: 'POST', headers: { ...headers, ...signed, 'x-unsigned': '1' }, body })
    assert.equal(other.status, 200, other.text)
    // The query is signed too.
    const moved = await tunnel.fetch('/contentful?space=s2&env=master', { method: 'POST', headers: { ...headers, ...signed }, body })
    assert.equal(moved.status, 403)
  })

  it('plivo: a query string and repeated form fields, accepted by the plivo SDK', async () => {
    const target = '/plivo?b=2&a=1'
    const url = `http://${tunnel.host}${target}`
    const body = 'To=%2B15550002&From=%2B15550001&Text=h%C3%A9llo&Media=m2&Media=m1'
    const nonce = '12345678901234567890'
    // The query sorted as k=v, a '.', then the fields sorted by name (and value), as key+value.
    const signed = `http://${tunnel.host}/plivo?a=1&b=2.From+15550001Mediam1Mediam2TexthélloTo+15550002`
    const signature = h('sha256', SECRET, `${signed}.${nonce}`, 'base64')
    const params: Record<string, string | string[]> = {}
    for (const [k, v] of new URLSearchParams(body)) params[k] = params[k] === undefined ? v : [params[k] as string, v].flat()
    assert.ok(plivo.validateV3Signature('POST', url, nonce, SECRET, signature, params), 'the plivo SDK accepts it')
    const headers = { 'content-type': 'application/x-www-form-urlencoded', 'x-plivo-signature-v3': `other,${signature}`, 'x-plivo-signature-v3-nonce': nonce }
    const ok = await tunnel.fetch(target, { method: 'POST', headers, body })
    assert.equal(ok.status, 200, ok.text)
    const otherNonce = await tunnel.fetch(target, { method: 'POST', headers: { ...headers, 'x-plivo-signature-v3-nonce': '1' }, body })
    assert.equal(otherNonce.status, 403)
    const otherQuery = await tunnel.fetch('/plivo?b=3&a=1', { method: 'POST', headers, body })
    assert.equal(otherQuery.status, 403)
  })

  it('buildkite: a webhook set to send its token has X-Buildkite-Token instead of a signature', async () => {
    const body = JSON.stringify({ event: 'ping' })
    const ok = await tunnel.fetch('/buildkite', { method: 'POST', headers: { 'content-type': 'application/json', 'x-buildkite-token': SECRET }, body })
    assert.equal(ok.status, 200, ok.text)
    const wrong = await tunnel.fetch('/buildkite', { method: 'POST', headers: { 'content-type': 'application/json', 'x-buildkite-token': 'not-it' }, body })
    assert.equal(wrong.status, 403)
  })

  it('mailgun: a form-urlencoded delivery and a subaccount event signed with the primary key (parent-signature)', async () => {
    const timestamp = secs(NOW)
    const token = 'a'.repeat(50)
    const sig = h('sha256', SECRET, timestamp + token, 'hex')
    const form = new URLSearchParams({ timestamp, token, signature: sig, event: 'delivered' }).toString()
    const ok = await tunnel.fetch('/mailgun', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form })
    assert.equal(ok.status, 200, ok.text)
    const sub = JSON.stringify({ signature: { timestamp, token, signature: h('sha256', 'subaccount-key', timestamp + token, 'hex'), 'parent-signature': sig }, 'event-data': {} })
    assert.equal((await tunnel.fetch('/mailgun', { method: 'POST', headers: { 'content-type': 'application/json' }, body: sub })).status, 200)
    const multipart = await tunnel.fetch('/mailgun', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' })
    assert.equal(multipart.status, 403)
    assert.match(JSON.parse(multipart.text).message, /JSON or form-urlencoded body/)
  })

  it('aftership: the Returns header and the pre-2022 am-webhook-signature form', async () => {
    const body = JSON.stringify({ event: 'return.approved' })
    const sig = h('sha256', SECRET, body, 'base64')
    for (const headers of [{ 'as-signature-hmac-sha256': sig }, { 'am-webhook-signature': `hmac-sha256=${sig}` }] as Array<Record<string, string>>) {
      const ok = await tunnel.fetch('/aftership', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
      assert.equal(ok.status, 200, ok.text)
    }
    const bad = await tunnel.fetch('/aftership', { method: 'POST', headers: { 'content-type': 'application/json', 'am-webhook-signature': sig }, body })
    assert.equal(bad.status, 403)
  })

  it('hubspot: escapes HubSpot decodes before signing, and the v1 and v2 signatures of a request without v3, signed by @hubspot/api-client', async () => {
    const body = JSON.stringify([{ eventId: 1, subscriptionType: 'contact.creation', note: 'héllo' }])
    const target = '/hubspot?portal=1%3A2&from=a%40b'
    const signed = `http://${tunnel.host}/hubspot?portal=1:2&from=a@b`
    const options = { clientSecret: SECRET, requestBody: body, url: signed, method: 'POST', timestamp: NOW }
    const v3 = HubSpotSignature.getSignature('POST', 'v3', { ...options, signature: '' })
    const ok = await tunnel.fetch(target, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hubspot-request-timestamp': String(NOW), 'x-hubspot-signature-v3': v3 }, body })
    assert.equal(ok.status, 200, ok.text)
    const url = `http://${tunnel.host}${target}`
    for (const version of ['v1', 'v2']) {
      const sig = HubSpotSignature.getSignature('POST', version, { ...options, url, signature: '' })
      assert.ok(HubSpotSignature.isValid({ ...options, url, signature: sig, signatureVersion: version }))
      const headers = { 'content-type': 'application/json', 'x-hubspot-signature': sig, 'x-hubspot-signature-version': version }
      const good = await tunnel.fetch(target, { method: 'POST', headers, body })
      assert.equal(good.status, 200, `${version}: ${good.text}`)
      const tampered = await tunnel.fetch(target, { method: 'POST', headers, body: body.replace('creation', 'deletion') })
      assert.equal(tampered.status, 403, version)
      const wrong = HubSpotSignature.getSignature('POST', version, { ...options, url, clientSecret: 'not-the-secret', signature: '' })
      assert.equal((await tunnel.fetch(target, { method: 'POST', headers: { ...headers, 'x-hubspot-signature': wrong }, body })).status, 403, version)
    }
    // v2 signs the URL, so the same signature on another path is refused.
    const v2 = HubSpotSignature.getSignature('POST', 'v2', { ...options, url, signature: '' })
    const moved = await tunnel.fetch('/hubspot?portal=2', { method: 'POST', headers: { 'content-type': 'application/json', 'x-hubspot-signature': v2, 'x-hubspot-signature-version': 'v2' }, body })
    assert.equal(moved.status, 403)
  })

  it('pinwheel signs x-timestamp; hostedhooks is read under the Rack spelling too', async () => {
    const body = JSON.stringify({ event: 'account.added', payload: { note: 'héllo' } })
    const ts = secs(NOW)
    const sig = `v2=${h('sha256', SECRET, `v2:${ts}:${body}`, 'hex')}`
    const json = { 'content-type': 'application/json' }
    assert.equal((await tunnel.fetch('/pinwheel', { method: 'POST', headers: { ...json, 'x-timestamp': ts, 'x-pinwheel-signature': sig }, body })).status, 200)
    const moved = await tunnel.fetch('/pinwheel', { method: 'POST', headers: { ...json, 'x-timestamp': String(Number(ts) + 1), 'x-pinwheel-signature': sig }, body })
    assert.equal(moved.status, 403)
    const v1 = await tunnel.fetch('/pinwheel', { method: 'POST', headers: { ...json, 'x-timestamp': ts, 'x-pinwheel-signature': sig.replace('v2=', 'v1=') }, body })
    assert.equal(v1.status, 403)
    assert.match(JSON.parse(v1.text).message, /not v2=<hex>/)
    const hh = `t=${ts},s=${h('sha256', SECRET, `${ts}.${body}`, 'hex')}`
    const underscored = await tunnel.fetch('/hostedhooks', { method: 'POST', headers: { ...json, hostedhooks_signature: hh }, body })
    assert.equal(underscored.status, 200, underscored.text)
    assert.equal((await tunnel.fetch('/hostedhooks', { method: 'POST', headers: { ...json, hostedhooks_signature: hh }, body: body.replace('added', 'removed') })).status, 403)
  })

  it('endpoint-verification challenges are answered as ngrok does: X CRC, Zoom url_validation, Xero intent to receive, Worldline', async () => {
    // X (Twitter) CRC: GET ?crc_token, answered with sha256=<base64 HMAC of the token>; it never reaches the upstream.
    const crc = await tunnel.fetch('/twitter?crc_token=NzEyMTk2MTEtZTg1ZS00YmUz%2BLWE3YmE%3D', { method: 'GET' })
    assert.equal(crc.status, 200, crc.text)
    assert.deepEqual(JSON.parse(crc.text), { response_token: `sha256=${h('sha256', SECRET, 'NzEyMTk2MTEtZTg1ZS00YmUz+LWE3YmE=', 'base64')}` })
    // A token that is a JSON body is not answered: its answer would be that body's X-Twitter-Webhooks-Signature.
    const body = JSON.stringify({ event: 'paid' })
    const oracle = await tunnel.fetch(`/twitter?crc_token=${encodeURIComponent(body)}`, { method: 'GET' })
    assert.equal(oracle.status, 403)
    assert.doesNotMatch(oracle.text, /response_token/)
    // Another token of another length: each answer has its own Content-Length.
    const crc2 = await tunnel.fetch('/twitter?crc_token=t', { method: 'GET' })
    assert.deepEqual(JSON.parse(crc2.text), { response_token: `sha256=${h('sha256', SECRET, 't', 'base64')}` })
    assert.equal((await tunnel.fetch('/twitter', { method: 'GET' })).status, 403, 'a GET that is not a CRC is not verified')

    // Zoom: endpoint.url_validation, signed like any Zoom event, answered with plainToken and its hex HMAC.
    const ts = secs(NOW)
    const validation = JSON.stringify({ payload: { plainToken: 'qgg8vlvZRS6UYooatFL8Aw' }, event_ts: NOW, event: 'endpoint.url_validation' })
    const zoomHeaders = (body: string, key = SECRET) => ({ 'content-type': 'application/json', 'x-zm-request-timestamp': ts, 'x-zm-signature': `v0=${h('sha256', key, `v0:${ts}:${body}`, 'hex')}` })
    const zoom = await tunnel.fetch('/zoom', { method: 'POST', headers: zoomHeaders(validation), body: validation })
    assert.equal(zoom.status, 200, zoom.text)
    assert.deepEqual(JSON.parse(zoom.text), { plainToken: 'qgg8vlvZRS6UYooatFL8Aw', encryptedToken: h('sha256', SECRET, 'qgg8vlvZRS6UYooatFL8Aw', 'hex') })
    const rivet = await zoomReceiver(SECRET, validation, zoomHeaders(validation))
    assert.deepEqual(JSON.parse(zoom.text), JSON.parse(rivet.body), "the same answer @zoom/rivet's receiver gives")
    // Unsigned, it is refused: answering it would hand out the HMAC of any string.
    const forged = await tunnel.fetch('/zoom', { method: 'POST', headers: zoomHeaders(validation, 'not-the-secret'), body: validation })
    assert.equal(forged.status, 403)
    assert.doesNotMatch(forged.text, /encryptedToken/)

    // Xero intent to receive: a well-signed delivery with no events gets 200 and an empty body, a badly signed one 401.
    const itr = JSON.stringify({ events: [], firstEventSequence: 0, lastEventSequence: 0, entropy: 'YSXCMKAQBJOEMGUZEPFZ' })
    const good = await tunnel.fetch('/xero', { method: 'POST', headers: { 'content-type': 'application/json', 'x-xero-signature': h('sha256', SECRET, itr, 'base64') }, body: itr })
    assert.equal(good.status, 200)
    assert.equal(good.text, '', 'answered by the action, not the upstream')
    const bad = await tunnel.fetch('/xero', { method: 'POST', headers: { 'content-type': 'application/json', 'x-xero-signature': h('sha256', 'not-the-secret', itr, 'base64') }, body: itr })
    assert.equal(bad.status, 401)

    // Worldline: GET with X-GCS-Webhooks-Endpoint-Verification, its value echoed as text/plain.
    const wl = await tunnel.fetch('/worldline', { method: 'GET', headers: { 'x-gcs-webhooks-endpoint-verification': 'verify-me-123' } })
    assert.equal(wl.status, 200)
    assert.equal(wl.text, 'verify-me-123')
    assert.match(String(wl.headers['content-type']), /^text\/plain/)
  })

  it('box: the secondary signature, and a signature over the body as Box\'s JSON encoder escapes it, both accepted by box-node-sdk', async () => {
    const body = JSON.stringify({ type: 'webhook_event', trigger: 'FILE.UPLOADED', source: { name: 'héllo/wörld 😀.txt' } })
    const escaped = body.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).replace(/\//g, '\\/')
    assert.notEqual(escaped, body)
    const ts = new Date(NOW).toISOString().replace(/\.\d{3}Z$/, 'Z')
    const base = { 'content-type': 'application/json', 'box-delivery-timestamp': ts, 'box-signature-version': '1', 'box-signature-algorithm': 'HmacSHA256' }
    for (const headers of [
      { ...base, 'box-signature-primary': h('sha256', SECRET, escaped + ts, 'base64') },
      { ...base, 'box-signature-primary': h('sha256', 'the-primary-key', body + ts, 'base64'), 'box-signature-secondary': h('sha256', SECRET, body + ts, 'base64') },
    ] as Array<Record<string, string>>) {
      assert.ok(await BoxWebhooks.validateMessage(body, headers, 'the-primary-key', { secondaryKey: SECRET }) || await BoxWebhooks.validateMessage(body, headers, SECRET), 'box-node-sdk accepts it')
      const ok = await tunnel.fetch('/box', { method: 'POST', headers, body })
      assert.equal(ok.status, 200, ok.text)
      assert.equal(JSON.parse(ok.text).body, body)
    }
    const v2 = await tunnel.fetch('/box', { method: 'POST', headers: { ...base, 'box-signature-version': '2', 'box-signature-primary': h('sha256', SECRET, body + ts, 'base64') }, body })
    assert.equal(v2.status, 403)
  })

  it('default tolerances follow the provider\'s own verifier: Go1 60 s, Box 10 minutes, others 5 minutes', async () => {
    const body = JSON.stringify({ event: 'paid' })
    const at = (ms: number) => secs(NOW - ms)
    const go1 = (ago: number) => ({ 'content-type': 'application/json', 'go1-signature': `t=${at(ago)},v1=${h('sha256', SECRET, `${at(ago)}.${body}`, 'hex')}` })
    assert.equal((await tunnel.fetch('/go1', { method: 'POST', headers: go1(30_000), body })).status, 200)
    assert.equal((await tunnel.fetch('/go1', { method: 'POST', headers: go1(120_000), body })).status, 403)
    const hh = (ago: number) => ({ 'content-type': 'application/json', 'hostedhooks-signature': `t=${at(ago)},s=${h('sha256', SECRET, `${at(ago)}.${body}`, 'hex')}` })
    assert.equal((await tunnel.fetch('/hostedhooks', { method: 'POST', headers: hh(120_000), body })).status, 200)
    assert.equal((await tunnel.fetch('/hostedhooks', { method: 'POST', headers: hh(7 * 60_000), body })).status, 403)
    const ts = new Date(NOW - 7 * 60_000).toISOString()
    const box = { 'content-type': 'application/json', 'box-delivery-timestamp': ts, 'box-signature-primary': h('sha256', SECRET, body + ts, 'base64') }
    assert.equal((await tunnel.fetch('/box', { method: 'POST', headers: box, body })).status, 200)
  })

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
  it('sendgrid: a secret that is not an EC verification key is refused at load', () => {
    for (const secret of ['not a key', generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).toString('base64')]) {
      assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'verify-webhook', config: { provider: 'sendgrid', secret } }] }] }),
        (err: Error) => err instanceof PolicyError && /config\.secret: (is not a SendGrid verification key|is a ed25519 public key, not the EC \(P-256\))/.test(err.message))
    }
  })
  const refusals: Record<string, RegExp> = {
    sns: /signs with an AWS certificate that gw would have to fetch/,
    orbit: /name an X-Orbit-Signature header but never say how it is computed/,
  }
  for (const [provider, why] of Object.entries(refusals)) {
    it(`${provider} is refused at load with the reason, not let through`, () => {
      assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'verify-webhook', config: { provider, secret: 's' } }] }] }),
        (err: Error) => err instanceof PolicyError && new RegExp(`"${provider}" is one of ngrok's providers, but`).test(err.message) && why.test(err.message))
    })
  }
  it('the names ngrok\'s integration guides use (vmware_workspace, sonatype_nexus, signalsciences) are the same providers', () => {
    for (const [alias, secret] of [['vmware_workspace', 'u::p'], ['sonatype_nexus', 's'], ['signalsciences', 's']]) {
      const policy = compilePolicy({ on_http_request: [{ actions: [{ type: 'verify-webhook', config: { provider: alias, secret } }] }] })
      void policy.close()
    }
    assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'verify-webhook', config: { provider: 'toString', secret: 's' } }] }] }),
      (err: Error) => /must be one of the providers gw verifies, got "toString"/.test(err.message))
  })
  it('an unknown provider lists the ones gw verifies', () => {
    assert.throws(() => compilePolicy({ on_http_request: [{ actions: [{ type: 'verify-webhook', config: { provider: 'githup', secret: 's' } }] }] }),
      (err: Error) => /must be one of the providers gw verifies/.test(err.message) && /github/.test(err.message))
  })
})
