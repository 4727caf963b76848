/**
 * How each webhook provider in ngrok's verify-webhook list signs its deliveries, as
 * data: which header carries the signature, what bytes are signed (the exact body,
 * often with a timestamp or the URL before it), the digest and its encoding. Schemes
 * come from each provider's own docs and official SDK; test/policy/webhook-providers.test.ts
 * checks them against the provider's official npm SDK wherever one exists (signing with
 * it, or having its verifier accept the delivery) and against the documented construction
 * otherwise. SendGrid signs with ECDSA: its `secret` is the public verification key.
 *
 * A timestamped scheme must be within the tolerance of the agent's clock, which stops
 * replays of old deliveries. Digests are compared in constant time.
 */
import { createHash, createHmac, createPublicKey, createVerify, timingSafeEqual, type KeyObject } from 'node:crypto'
import { escape as querystringEscape } from 'node:querystring'
import { getHeader } from '../headers.js'

export interface Delivery {
  secret: string
  rawHeaders: readonly string[]
  body: Buffer
  /** The URL the provider called: `https://host/path?query` (Twilio, Square, HubSpot sign it). */
  url: string
  /** The request target as it arrived: `/path?query` (Contentful signs it). */
  target: string
  method: string
  nowMs: number
  toleranceMs: number
}

/** undefined when verified, else why not. */
export type Verifier = (d: Delivery) => string | undefined

type Algo = 'sha1' | 'sha256' | 'sha512'
type Encoding = 'hex' | 'base64'

const MISMATCH = 'the signature does not match'
const STALE = 'the signature timestamp is outside the tolerance'

function mac(algo: Algo, key: string | Buffer, parts: Array<string | Buffer>, encoding: Encoding): string {
  const h = createHmac(algo, key)
  for (const p of parts) h.update(p)
  return h.digest(encoding)
}

/** Constant-time comparison of encoded digests; hex is compared case-insensitively. */
function same(expected: string, presented: string, encoding: Encoding): boolean {
  const a = Buffer.from(encoding === 'hex' ? expected.toLowerCase() : expected)
  const b = Buffer.from(encoding === 'hex' ? presented.trim().toLowerCase() : presented.trim())
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Seconds, milliseconds or an ISO date, to epoch ms. */
function timestampMs(value: string, unit: 's' | 'ms' | 'iso'): number {
  if (unit === 'iso') return Date.parse(value)
  if (!/^\d+$/.test(value.trim())) return NaN
  return Number(value) * (unit === 's' ? 1000 : 1)
}

function fresh(d: Delivery, ms: number): string | undefined {
  return Number.isFinite(ms) && Math.abs(d.nowMs - ms) <= d.toleranceMs ? undefined : STALE
}

interface HeaderScheme {
  header: string
  algo: Algo
  encoding: Encoding
  /** Stripped from the header value (`sha256=`). */
  prefix?: string
  /** Several signatures in one header (key rotation), separated by this. */
  separator?: string
  /** A timestamp header that is signed with the body. */
  timestamp?: { header: string; unit: 's' | 'ms' | 'iso' }
  /** The signed bytes; the body alone by default. */
  message?: (d: Delivery, ts: string) => Array<string | Buffer>
  key?: (secret: string) => string | Buffer
}

/** A signature in its own header, over the body (and maybe a timestamp or the URL). */
function headerHmac(s: HeaderScheme): Verifier {
  return (d) => {
    const value = getHeader(d.rawHeaders, s.header)
    if (value === undefined) return `the ${s.header} header is missing`
    let ts = ''
    if (s.timestamp) {
      const t = getHeader(d.rawHeaders, s.timestamp.header)
      if (t === undefined) return `the ${s.timestamp.header} header is missing`
      ts = t
    }
    const candidates = (s.separator ? value.split(s.separator) : [value]).map((v) => v.trim())
      .filter((v) => s.prefix === undefined || v.startsWith(s.prefix))
      .map((v) => (s.prefix ? v.slice(s.prefix.length) : v))
    if (candidates.length === 0) return `the ${s.header} header has no ${s.prefix ?? ''}signature`
    const expected = mac(s.algo, s.key ? s.key(d.secret) : d.secret, s.message ? s.message(d, ts) : [d.body], s.encoding)
    if (!candidates.some((c) => same(expected, c, s.encoding))) return MISMATCH
    return s.timestamp ? fresh(d, timestampMs(ts, s.timestamp.unit)) : undefined
  }
}

/** `t=<unix>,v1=<hex>` in one header (Stripe, Mux, Calendly, TikTok), signing `<t>.<body>`. */
function timestampedPairs(header: string, sigKey: string, tKey = 't'): Verifier {
  return (d) => {
    const value = getHeader(d.rawHeaders, header)
    if (value === undefined) return `the ${header} header is missing`
    let t: string | undefined
    const sigs: string[] = []
    for (const part of value.split(',')) {
      const eq = part.indexOf('=')
      const k = part.slice(0, eq).trim()
      const v = part.slice(eq + 1).trim()
      if (k === tKey) t = v
      else if (k === sigKey) sigs.push(v)
    }
    if (!t || sigs.length === 0) return `the ${header} header lacks ${tKey}= or ${sigKey}=`
    const expected = mac('sha256', d.secret, [`${t}.`, d.body], 'hex')
    if (!sigs.some((v) => same(expected, v, 'hex'))) return MISMATCH
    return fresh(d, timestampMs(t, 's'))
  }
}

/**
 * Svix and the Standard Webhooks spec (Clerk and others send through Svix):
 * `svix-id`, `svix-timestamp`, `svix-signature: v1,<base64> v1,<base64>`, HMAC-SHA256
 * of `<id>.<timestamp>.<body>` with the base64 key after `whsec_`.
 */
const svix: Verifier = (d) => {
  const h = (n: string) => getHeader(d.rawHeaders, `svix-${n}`) ?? getHeader(d.rawHeaders, `webhook-${n}`)
  const id = h('id')
  const ts = h('timestamp')
  const sig = h('signature')
  if (!id || !ts || !sig) return 'the svix-id, svix-timestamp or svix-signature header is missing'
  const key = Buffer.from(d.secret.startsWith('whsec_') ? d.secret.slice(6) : d.secret, 'base64')
  const expected = mac('sha256', key, [`${id}.${ts}.`, d.body], 'base64')
  const presented = sig.split(' ').filter((s) => s.startsWith('v1,')).map((s) => s.slice(3))
  if (!presented.some((p) => same(expected, p, 'base64'))) return MISMATCH
  return fresh(d, timestampMs(ts, 's'))
}

/**
 * Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 of the full URL followed, for a form
 * POST, by each parameter's name and value sorted by name. A JSON delivery carries
 * `bodySHA256=<hex sha256 of the body>` in the URL instead, and the URL alone is signed.
 */
const twilio: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'x-twilio-signature')
  if (sig === undefined) return 'the X-Twilio-Signature header is missing'
  const url = new URL(d.url)
  const bodyHash = url.searchParams.get('bodySHA256')
  let signed = d.url
  if (bodyHash !== null) {
    if (!same(createHash('sha256').update(d.body).digest('hex'), bodyHash, 'hex')) return 'the body does not match bodySHA256'
  } else {
    const type = (getHeader(d.rawHeaders, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase()
    if (d.method === 'POST' && type === 'application/x-www-form-urlencoded') {
      const params = [...new URLSearchParams(d.body.toString('utf8'))]
      params.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      signed += params.map(([k, v]) => k + v).join('')
    }
  }
  return same(mac('sha1', d.secret, [signed], 'base64'), sig, 'base64') ? undefined : MISMATCH
}

/** GitLab sends the secret itself in `X-Gitlab-Token`. */
const gitlab: Verifier = (d) => {
  const token = getHeader(d.rawHeaders, 'x-gitlab-token')
  if (token === undefined) return 'the X-Gitlab-Token header is missing'
  const a = createHash('sha256').update(token).digest()
  const b = createHash('sha256').update(d.secret).digest()
  return timingSafeEqual(a, b) ? undefined : MISMATCH
}

/**
 * Contentful (@contentful/node-apps-toolkit's signRequest/verifyRequest, which Contentful's
 * webhook docs point to): `x-contentful-signature` is hex HMAC-SHA256 of
 * `method \n path \n headers \n body`, where headers are those named in
 * `x-contentful-signed-headers` plus that header and `x-contentful-timestamp` (ms), each
 * `name:value` lower-cased and trimmed, sorted by name, joined with `;`, and path is the
 * request target normalised as the toolkit does (the query escaped, then encodeURI).
 */
const contentful: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'x-contentful-signature')
  const ts = getHeader(d.rawHeaders, 'x-contentful-timestamp')
  const listed = getHeader(d.rawHeaders, 'x-contentful-signed-headers')
  if (!sig || !ts || listed === undefined) return 'the x-contentful-signature, x-contentful-timestamp or x-contentful-signed-headers header is missing'
  const t = Number.parseInt(ts, 10)
  if (!Number.isFinite(t)) return STALE
  const names = listed.split(',')
  const headers = new Map<string, string>()
  for (let i = 0; i < d.rawHeaders.length; i += 2) {
    const name = d.rawHeaders[i]!.toLowerCase().trim()
    if (names.includes(name) && !headers.has(name)) headers.set(name, d.rawHeaders[i + 1]!.trim())
  }
  headers.delete('x-contentful-signed-headers')
  headers.delete('x-contentful-timestamp')
  const keys = [...headers.keys(), 'x-contentful-signed-headers', 'x-contentful-timestamp'].sort(byCodeUnit)
  headers.set('x-contentful-timestamp', String(t))
  headers.set('x-contentful-signed-headers', keys.join(','))
  const [pathname, search] = d.target.split('?') as [string, string | undefined]
  let path: string
  try {
    path = encodeURI(search ? `${pathname}?${querystringEscape(search)}` : pathname)
  } catch {
    return 'the request target cannot be normalised as Contentful signs it'
  }
  const canonical = [d.method, path, keys.map((k) => `${k}:${headers.get(k)}`).join(';'), '']
  const expected = mac('sha256', d.secret, [canonical.join('\n'), d.body], 'hex')
  if (!same(expected, sig, 'hex')) return MISMATCH
  return fresh(d, t)
}

const byCodeUnit = (a: string, b: string) => (a > b ? 1 : -1)

/**
 * Hygraph (formerly GraphCMS; @hygraph/utils): `gcms-signature: sign=<base64>, env=<name>, t=<ms>`,
 * base64 HMAC-SHA256 of the JSON text `{"Body":<the body as a JSON string>,"EnvironmentName":<env>,"TimeStamp":<t>}`.
 */
const hygraph: Verifier = (d) => {
  const value = getHeader(d.rawHeaders, 'gcms-signature')
  if (value === undefined) return 'the gcms-signature header is missing'
  const fields = new Map<string, string>()
  for (const part of value.split(',')) {
    const eq = part.indexOf('=')
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim())
  }
  const sign = fields.get('sign')
  const env = fields.get('env')
  const t = fields.get('t')
  if (!sign || env === undefined || !t || !/^\d+$/.test(t)) return 'the gcms-signature header lacks sign=, env= or t='
  const payload = JSON.stringify({ Body: d.body.toString('utf8'), EnvironmentName: env, TimeStamp: Number(t) })
  if (!same(mac('sha256', d.secret, [payload], 'base64'), sign, 'base64')) return MISMATCH
  return fresh(d, Number(t))
}

/**
 * Linear (@linear/sdk's LinearWebhookClient): `linear-signature` is hex HMAC-SHA256 of the
 * body, and the replay check reads `webhookTimestamp` (ms) inside the signed JSON body.
 */
const linear: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'linear-signature')
  if (sig === undefined) return 'the linear-signature header is missing'
  if (!same(mac('sha256', d.secret, [d.body], 'hex'), sig, 'hex')) return MISMATCH
  let ts: unknown
  try {
    ts = (JSON.parse(d.body.toString('utf8')) as { webhookTimestamp?: unknown } | null)?.webhookTimestamp
  } catch {
    return 'the body is not JSON, so it has no webhookTimestamp'
  }
  if (typeof ts !== 'number') return 'the body has no numeric webhookTimestamp'
  return fresh(d, ts)
}

/**
 * Orb (orb-billing's webhooks.verifySignature): `X-Orb-Signature: v1=<hex>` (several, space
 * separated) of `v1:<X-Orb-Timestamp>:<body>`; the timestamp is ISO 8601, UTC when it has no zone.
 */
const orb: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'x-orb-signature')
  const ts = getHeader(d.rawHeaders, 'x-orb-timestamp')
  if (sig === undefined || ts === undefined) return 'the X-Orb-Signature or X-Orb-Timestamp header is missing'
  const expected = mac('sha256', d.secret, [`v1:${ts}:`, d.body], 'hex')
  const presented = sig.split(' ').filter((s) => s.startsWith('v1=')).map((s) => s.slice(3))
  if (!presented.some((p) => same(expected, p, 'hex'))) return MISMATCH
  return fresh(d, Date.parse(ts.includes('Z') || ts.includes('+') ? ts : `${ts}Z`))
}

/**
 * SendGrid's Signed Event Webhook (@sendgrid/eventwebhook): `X-Twilio-Email-Event-Webhook-Signature`
 * is a base64 DER ECDSA (P-256, SHA-256) signature of `<X-Twilio-Email-Event-Webhook-Timestamp><body>`,
 * checked with the verification key SendGrid shows (base64 DER SubjectPublicKeyInfo, or PEM),
 * which is the action's `secret`.
 */
const sendgrid: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'x-twilio-email-event-webhook-signature')
  const ts = getHeader(d.rawHeaders, 'x-twilio-email-event-webhook-timestamp')
  if (sig === undefined || ts === undefined) return 'the X-Twilio-Email-Event-Webhook-Signature or -Timestamp header is missing'
  const key = ecdsaKey(d.secret)
  if (typeof key === 'string') return key
  const v = createVerify('sha256')
  v.update(ts)
  v.update(d.body)
  let ok = false
  try {
    ok = v.verify(key, Buffer.from(sig.trim(), 'base64'))
  } catch {
    ok = false
  }
  if (!ok) return MISMATCH
  return fresh(d, timestampMs(ts, 's'))
}

const ecdsaKeys = new Map<string, KeyObject | string>()

/** The verification key as a KeyObject, or why it is not one (kept per secret). */
export function ecdsaKey(secret: string): KeyObject | string {
  let key = ecdsaKeys.get(secret)
  if (key !== undefined) return key
  try {
    const k = secret.includes('-----BEGIN')
      ? createPublicKey(secret)
      : createPublicKey({ key: Buffer.from(secret.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' })
    key = k.asymmetricKeyType === 'ec' ? k : `is a ${k.asymmetricKeyType} public key, not the EC (P-256) verification key SendGrid shows`
  } catch {
    key = 'is not a SendGrid verification key: give the EC public key SendGrid shows under Settings > Mail Settings > Signed Event Webhook Requests (base64 DER), or its PEM'
  }
  if (ecdsaKeys.size < 64) ecdsaKeys.set(secret, key)
  return key
}

/**
 * Buildkite: `X-Buildkite-Signature: timestamp=<unix>,signature=<hex>`, HMAC-SHA256 of
 * `<timestamp>.<body>` keyed with the webhook's token; a webhook set to send the token
 * instead has `X-Buildkite-Token`, compared with the secret in constant time.
 */
const buildkite: Verifier = (d) => {
  const value = getHeader(d.rawHeaders, 'x-buildkite-signature')
  if (value === undefined) {
    const token = getHeader(d.rawHeaders, 'x-buildkite-token')
    if (token === undefined) return 'the X-Buildkite-Signature (or X-Buildkite-Token) header is missing'
    return sameSecret(token, d.secret) ? undefined : MISMATCH
  }
  const parts = new Map(value.split(',').map((kv) => {
    const eq = kv.indexOf('=')
    return [kv.slice(0, eq).trim(), kv.slice(eq + 1).trim()] as const
  }))
  const ts = parts.get('timestamp')
  const sig = parts.get('signature')
  if (!ts || !sig) return 'the X-Buildkite-Signature header lacks timestamp= or signature='
  if (!same(mac('sha256', d.secret, [`${ts}.`, d.body], 'hex'), sig, 'hex')) return MISMATCH
  return fresh(d, timestampMs(ts, 's'))
}

/** Equal strings, compared in constant time through their digests. */
function sameSecret(presented: string, secret: string): boolean {
  return timingSafeEqual(createHash('sha256').update(presented).digest(), createHash('sha256').update(secret).digest())
}

const WEBSUB_ALGOS: Readonly<Record<string, Algo>> = { sha1: 'sha1', sha256: 'sha256', sha512: 'sha512' }

/**
 * Jira (Cloud and Data Center admin webhooks with a secret): `X-Hub-Signature: <method>=<hex>`,
 * the WebSub form, HMAC of the body; the method is sha256 by default.
 */
const jira: Verifier = (d) => {
  const value = getHeader(d.rawHeaders, 'x-hub-signature')
  if (value === undefined) return 'the X-Hub-Signature header is missing'
  const eq = value.indexOf('=')
  const algo = WEBSUB_ALGOS[value.slice(0, eq).trim().toLowerCase()]
  if (eq < 0 || algo === undefined) return 'the X-Hub-Signature header is not <method>=<hex> with method sha1, sha256 or sha512'
  return same(mac(algo, d.secret, [d.body], 'hex'), value.slice(eq + 1), 'hex') ? undefined : MISMATCH
}

/**
 * Mailgun: the signature is inside the body, `signature: {timestamp, token, signature}` in
 * a JSON delivery or `timestamp`, `token`, `signature` fields in a form one: hex HMAC-SHA256
 * of `<timestamp><token>` with the HTTP webhook signing key (`parent-signature`, a
 * subaccount's event signed with the primary account's key, is accepted too). Mailgun signs
 * only these fields, not the event data beside them.
 */
const mailgun: Verifier = (d) => {
  const type = (getHeader(d.rawHeaders, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  let fields: Record<string, unknown> | undefined
  if (type === 'application/json') {
    try {
      const parsed = JSON.parse(d.body.toString('utf8')) as { signature?: unknown } | null
      if (parsed && typeof parsed.signature === 'object' && parsed.signature !== null) fields = parsed.signature as Record<string, unknown>
    } catch {
      return 'the body is not JSON'
    }
  } else if (type === 'application/x-www-form-urlencoded') {
    fields = Object.fromEntries(new URLSearchParams(d.body.toString('utf8')))
  } else {
    return `gw reads Mailgun's signature from a JSON or form-urlencoded body, and this one is ${type || 'untyped'}`
  }
  const { timestamp, token } = fields ?? {}
  const sigs = [fields?.signature, fields?.['parent-signature']].filter((v): v is string => typeof v === 'string')
  if (typeof timestamp !== 'string' || typeof token !== 'string' || sigs.length === 0) return 'the body has no signature with timestamp, token and signature'
  const expected = mac('sha256', d.secret, [timestamp, token], 'hex')
  if (!sigs.some((sig) => same(expected, sig, 'hex'))) return MISMATCH
  return fresh(d, timestampMs(timestamp, 's'))
}

/**
 * Plivo's V3 signature (the plivo SDK's validateV3Signature): `X-Plivo-Signature-V3` (or
 * `-Ma-V3`, several comma separated) is base64 HMAC-SHA256 of `<url>.<X-Plivo-Signature-V3-Nonce>`,
 * where url is scheme, host and path, then the query sorted as `k=v` joined by `&`, and for
 * a form POST its fields sorted and concatenated as `kv` (after `?`, or after `?query.`).
 */
const plivo: Verifier = (d) => {
  const sigs = [getHeader(d.rawHeaders, 'x-plivo-signature-v3'), getHeader(d.rawHeaders, 'x-plivo-signature-ma-v3')].filter((v): v is string => v !== undefined)
  const nonce = getHeader(d.rawHeaders, 'x-plivo-signature-v3-nonce')
  if (sigs.length === 0 || nonce === undefined) return 'the X-Plivo-Signature-V3 or X-Plivo-Signature-V3-Nonce header is missing'
  const url = new URL(d.url)
  const sorted = (params: URLSearchParams) => {
    const byKey = new Map<string, string[]>()
    for (const [k, v] of params) byKey.set(k, [...(byKey.get(k) ?? []), v])
    return [...byKey.keys()].sort().map((k) => [k, byKey.get(k)!.sort()] as const)
  }
  const query = sorted(url.searchParams).flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`)).join('&')
  const type = (getHeader(d.rawHeaders, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  const form = d.method === 'POST' && type === 'application/x-www-form-urlencoded' ? sorted(new URLSearchParams(d.body.toString('utf8'))) : []
  let base = `${url.protocol}//${url.host}${d.target.split('?')[0]!.trim()}`
  if (query.length > 0 || form.length > 0) base += `?${query}`
  if (query.length > 0 && form.length > 0) base += '.'
  base += form.map(([k, vs]) => vs.map((v) => k + v).join('')).join('')
  const expected = mac('sha256', d.secret, [`${base}.${nonce}`], 'base64')
  return sigs.some((s) => s.split(',').some((one) => same(expected, one, 'base64'))) ? undefined : MISMATCH
}

/**
 * AfterShip: base64 HMAC-SHA256 of the body with the webhook secret, in `aftership-hmac-sha256`
 * (Tracking) or `as-signature-hmac-sha256` (Returns, Warranty); organisations created before
 * October 2022 get `am-webhook-signature: hmac-sha256=<base64>`.
 */
const aftership: Verifier = (d) => {
  const plain = getHeader(d.rawHeaders, 'aftership-hmac-sha256') ?? getHeader(d.rawHeaders, 'as-signature-hmac-sha256')
  const legacy = getHeader(d.rawHeaders, 'am-webhook-signature')
  const sig = plain ?? (legacy?.trim().startsWith('hmac-sha256=') ? legacy.trim().slice('hmac-sha256='.length) : undefined)
  if (sig === undefined) return 'the aftership-hmac-sha256 (or as-signature-hmac-sha256, am-webhook-signature) header is missing'
  return same(mac('sha256', d.secret, [d.body], 'base64'), sig, 'base64') ? undefined : MISMATCH
}

/**
 * VMware Workspace ONE event notifications carry HTTP Basic credentials, not a signature;
 * ngrok's secret for them is `<username>::<password>`.
 */
const vmware: Verifier = (d) => {
  const auth = getHeader(d.rawHeaders, 'authorization')
  if (auth === undefined || !/^basic /i.test(auth.trim())) return 'the Authorization: Basic header is missing'
  const sep = d.secret.indexOf('::')
  const expected = sep < 0 ? d.secret : `${d.secret.slice(0, sep)}:${d.secret.slice(sep + 2)}`
  return sameSecret(Buffer.from(auth.trim().slice(6).trim(), 'base64').toString('utf8'), expected) ? undefined : MISMATCH
}

/** Providers whose secret has a shape that can be checked when the policy loads. */
export const SECRET_CHECKS: Readonly<Record<string, (secret: string) => string | undefined>> = {
  sendgrid: (secret) => {
    const key = ecdsaKey(secret)
    return typeof key === 'string' ? key : undefined
  },
}

/** Sonatype Nexus: `X-Nexus-Webhook-Signature`, hex HMAC-SHA1 of the (whitespace-free) JSON body. */
const nexus = headerHmac({ header: 'x-nexus-webhook-signature', algo: 'sha1', encoding: 'hex' })

/**
 * Trend Micro Cloud One Conformity: hex HMAC-SHA256 of the body with the webhook security
 * token, in `X-TrendMicro-Signature` (Trend Micro's docs) or `X-Conformity-Signature` (the
 * older Cloud Conformity name).
 */
const conformity: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'x-trendmicro-signature') ?? getHeader(d.rawHeaders, 'x-conformity-signature')
  if (sig === undefined) return 'the X-TrendMicro-Signature (or X-Conformity-Signature) header is missing'
  return same(mac('sha256', d.secret, [d.body], 'hex'), sig, 'hex') ? undefined : MISMATCH
}

/**
 * Mailchimp Transactional (Mandrill): `X-Mandrill-Signature` (or `X-Mailchimp-Signature`) is
 * base64 HMAC-SHA1, with the webhook's key, of the webhook URL followed by each POST field's
 * name and value, sorted by name. Mailchimp's audience webhooks are not signed at all.
 */
const mandrill: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'x-mandrill-signature') ?? getHeader(d.rawHeaders, 'x-mailchimp-signature')
  if (sig === undefined) return 'the X-Mandrill-Signature (or X-Mailchimp-Signature) header is missing'
  const type = (getHeader(d.rawHeaders, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  const fields = d.method === 'POST' && type === 'application/x-www-form-urlencoded' ? [...new URLSearchParams(d.body.toString('utf8'))] : []
  fields.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const signed = d.url + fields.map(([k, v]) => k + v).join('')
  return same(mac('sha1', d.secret, [signed], 'base64'), sig, 'base64') ? undefined : MISMATCH
}

/** The characters HubSpot decodes in the URL before signing it (its v3 instructions' table). */
const HUBSPOT_DECODED: Readonly<Record<string, string>> = {
  '%3A': ':', '%2F': '/', '%3F': '?', '%40': '@', '%21': '!', '%24': '$', '%27': "'", '%28': '(', '%29': ')', '%2A': '*', '%2C': ',', '%3B': ';',
}

/**
 * HubSpot ("Validating requests"; @hubspot/api-client's Signature): `X-HubSpot-Signature-v3`
 * is base64 HMAC-SHA256, keyed with the app's client secret, of method + URL + body +
 * `X-HubSpot-Request-Timestamp` (ms), refused beyond the tolerance (HubSpot says 5 minutes).
 * HubSpot signs the URL with a few percent-escapes decoded (HUBSPOT_DECODED); the URL as it
 * arrived is tried too. A request without v3 is checked by its older signature, as HubSpot
 * still sends it for backwards compatibility: `X-HubSpot-Signature` is hex SHA-256 of
 * secret + body (`X-HubSpot-Signature-Version: v1`, the default) or of secret + method +
 * URL + body (`v2`); those carry no timestamp.
 */
const hubspot: Verifier = (d) => {
  const v3 = getHeader(d.rawHeaders, 'x-hubspot-signature-v3')
  if (v3 !== undefined) {
    const ts = getHeader(d.rawHeaders, 'x-hubspot-request-timestamp')
    if (ts === undefined) return 'the X-HubSpot-Request-Timestamp header is missing'
    const decoded = d.url.replace(/%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)/gi, (m) => HUBSPOT_DECODED[m.toUpperCase()]!)
    const urls = decoded === d.url ? [d.url] : [decoded, d.url]
    if (!urls.some((url) => same(mac('sha256', d.secret, [d.method, url, d.body, ts], 'base64'), v3, 'base64'))) return MISMATCH
    return fresh(d, timestampMs(ts, 'ms'))
  }
  const sig = getHeader(d.rawHeaders, 'x-hubspot-signature')
  if (sig === undefined) return 'the X-HubSpot-Signature-v3 (or X-HubSpot-Signature) header is missing'
  const version = (getHeader(d.rawHeaders, 'x-hubspot-signature-version') ?? 'v1').trim().toLowerCase()
  if (version !== 'v1' && version !== 'v2') return `X-HubSpot-Signature-Version ${JSON.stringify(version)} is not v1 or v2 (and there is no X-HubSpot-Signature-v3)`
  const h = createHash('sha256').update(d.secret)
  if (version === 'v2') h.update(d.method).update(d.url)
  return same(h.update(d.body).digest('hex'), sig, 'hex') ? undefined : MISMATCH
}

/**
 * Box (its "Signature verification" guide; box-node-sdk's WebhooksManager.validateMessage):
 * `Box-Signature-Primary` (or `-Secondary`, signed with the other key) is base64 HMAC-SHA256
 * of the body followed by `Box-Delivery-Timestamp` (ISO), with `Box-Signature-Version: 1` and
 * `Box-Signature-Algorithm: HmacSHA256`. The SDK also accepts a signature over the body as
 * Box's JSON encoder escapes it (every character from U+007F as `\uXXXX`, `/` as `\/`), so gw
 * does too. Timestamped; Box's SDK allows 10 minutes, the default tolerance here too.
 */
const box: Verifier = (d) => {
  const ts = getHeader(d.rawHeaders, 'box-delivery-timestamp')
  const sigs = [getHeader(d.rawHeaders, 'box-signature-primary'), getHeader(d.rawHeaders, 'box-signature-secondary')].filter((v): v is string => v !== undefined)
  if (ts === undefined || sigs.length === 0) return 'the Box-Signature-Primary (or -Secondary) or Box-Delivery-Timestamp header is missing'
  const version = getHeader(d.rawHeaders, 'box-signature-version')
  const algorithm = getHeader(d.rawHeaders, 'box-signature-algorithm')
  if ((version !== undefined && version.trim() !== '1') || (algorithm !== undefined && algorithm.trim() !== 'HmacSHA256')) {
    return 'Box-Signature-Version is not 1 or Box-Signature-Algorithm is not HmacSHA256'
  }
  const text = d.body.toString('utf8')
  const escaped = text
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/(?<!\\)\//g, '\\/')
  const bodies: Array<string | Buffer> = escaped === text ? [d.body] : [d.body, escaped]
  const expected = bodies.map((b) => mac('sha256', d.secret, [b, ts], 'base64'))
  if (!sigs.some((sig) => expected.some((e) => same(e, sig, 'base64')))) return MISMATCH
  return fresh(d, timestampMs(ts, 'iso'))
}

/**
 * Default tolerances where the provider's own verifier uses another than 5 minutes:
 * Box's SDK allows 10 minutes, Go1's verifier 60 seconds. `tolerance` overrides them.
 */
export const DEFAULT_TOLERANCE_MS: Readonly<Record<string, number>> = { box: 600_000, go1: 60_000 }

/**
 * Go1 (its guide "Webhook Signature Authentification" and go1com/webhook-verifier-js):
 * `Go1-Signature: t=<unix>,v1=<hex>`, HMAC-SHA256 of `<t>.<body>` with the webhook's secret_key.
 */
const go1 = timestampedPairs('go1-signature', 'v1')

const hostedhooksDashed = timestampedPairs('hostedhooks-signature', 's')
const hostedhooksUnderscored = timestampedPairs('hostedhooks_signature', 's')

/**
 * HostedHooks ("Webhook Signatures"): `HostedHooks-Signature: t=<unix>,s=<hex>`, HMAC-SHA256
 * of `<t>.<body>` with the endpoint's signing secret. HostedHooks names the header as Rack
 * shows it, `HTTP_HOSTEDHOOKS_SIGNATURE`, which `HostedHooks_Signature` also becomes, so
 * that spelling is read too.
 */
const hostedhooks: Verifier = (d) =>
  getHeader(d.rawHeaders, 'hostedhooks-signature') === undefined && getHeader(d.rawHeaders, 'hostedhooks_signature') !== undefined
    ? hostedhooksUnderscored(d)
    : hostedhooksDashed(d)

/**
 * Pinwheel ("Webhook Signature Verification"): `x-pinwheel-signature: v2=<hex>`, HMAC-SHA256
 * with the API secret of `v2:<x-timestamp>:<body>`. Pinwheel signs the timestamp but neither
 * says its unit nor asks for an age check (its reference verifiers compare the signature
 * only), so gw checks the signature and does not judge the timestamp's age.
 */
const pinwheel: Verifier = (d) => {
  const sig = getHeader(d.rawHeaders, 'x-pinwheel-signature')
  const ts = getHeader(d.rawHeaders, 'x-timestamp')
  if (sig === undefined || ts === undefined) return 'the x-pinwheel-signature or x-timestamp header is missing'
  const value = sig.trim()
  if (!value.startsWith('v2=')) return 'the x-pinwheel-signature header is not v2=<hex>'
  return same(mac('sha256', d.secret, [`v2:${ts}:`, d.body], 'hex'), value.slice(3), 'hex') ? undefined : MISMATCH
}

/**
 * Signal Sciences (Fastly Next-Gen WAF) generic webhooks: `X-SigSci-Signature` is the hex
 * HMAC-SHA256 of the body with the integration's signing key.
 */
const sigsci = headerHmac({ header: 'x-sigsci-signature', algo: 'sha256', encoding: 'hex' })

const meta = headerHmac({ header: 'x-hub-signature-256', prefix: 'sha256=', algo: 'sha256', encoding: 'hex' })

/** The answer to a provider's endpoint-verification challenge, sent instead of forwarding. */
export interface ChallengeAnswer {
  status: number
  headers: string[]
  body: string
}

function jsonBody(d: Delivery): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(d.body.toString('utf8')) as unknown
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

const CRC_TOKEN = /^[A-Za-z0-9+/=_-]{1,512}$/

/** A new array each time: the engine adds Content-Length to the headers it is given. */
const jsonType = () => ['content-type', 'application/json; charset=utf-8']

/**
 * The endpoint-verification challenges verify-webhook answers itself, as ngrok's action does
 * for Twitter, Worldline, Xero and Zoom. Each gets the delivery and whether its signature
 * verified, and returns the answer, or undefined when the request is not its challenge.
 * Zoom's and Xero's challenges are signed and answered only when the signature verifies (an
 * unverified Zoom challenge would hand out the HMAC of any string); Twitter's CRC and
 * Worldline's check carry no signature, by those providers' design.
 */
export const CHALLENGES: Readonly<Record<string, (d: Delivery, verified: boolean) => ChallengeAnswer | undefined>> = {
  // X (Twitter) CRC: GET ?crc_token=…, answered with `{"response_token": "sha256=<base64 HMAC-SHA256 of the token>"}`.
  // That is the construction of X-Twitter-Webhooks-Signature itself, so the answer for a token
  // that is a whole JSON body would be a valid signature of that body: only a token of the
  // characters X's tokens use (base64, URL-safe base64) is answered, which no JSON body is.
  twitter: (d) => {
    if (d.method !== 'GET') return undefined
    const token = new URL(d.url).searchParams.get('crc_token')
    if (token === null || !CRC_TOKEN.test(token)) return undefined
    return { status: 200, headers: jsonType(), body: JSON.stringify({ response_token: `sha256=${mac('sha256', d.secret, [token], 'base64')}` }) }
  },
  // Worldline: GET with X-GCS-Webhooks-Endpoint-Verification, answered with its value as text/plain.
  worldline: (d) => {
    if (d.method !== 'GET') return undefined
    const value = getHeader(d.rawHeaders, 'x-gcs-webhooks-endpoint-verification')
    if (value === undefined) return undefined
    return { status: 200, headers: ['content-type', 'text/plain; charset=utf-8'], body: value }
  },
  // Xero's intent to receive: signed deliveries with no events; a good one gets 200 and an empty body.
  xero: (d, verified) => {
    const events = verified ? jsonBody(d)?.events : undefined
    return Array.isArray(events) && events.length === 0 ? { status: 200, headers: [], body: '' } : undefined
  },
  // Zoom's endpoint.url_validation: `{"plainToken", "encryptedToken": <hex HMAC-SHA256 of plainToken>}`.
  zoom: (d, verified) => {
    const body = verified ? jsonBody(d) : undefined
    const plainToken = (body?.payload as { plainToken?: unknown } | undefined)?.plainToken
    if (body?.event !== 'endpoint.url_validation' || typeof plainToken !== 'string') return undefined
    return { status: 200, headers: jsonType(), body: JSON.stringify({ plainToken, encryptedToken: mac('sha256', d.secret, [plainToken], 'hex') }) }
  },
}

/** The status a failed verification gets when the provider requires one other than 403: Xero's intent to receive wants 401. */
export const FAILURE_STATUS: Readonly<Record<string, number>> = { xero: 401 }

/** By ngrok's provider identifier. */
export const WEBHOOK_PROVIDERS: Readonly<Record<string, Verifier>> = {
  aftership,
  airship: headerHmac({
    header: 'x-ua-signature', algo: 'sha256', encoding: 'hex',
    timestamp: { header: 'x-ua-timestamp', unit: 's' }, message: (d, ts) => [`${ts}:`, d.body],
  }),
  alchemy: headerHmac({ header: 'x-alchemy-signature', algo: 'sha256', encoding: 'hex' }),
  autodesk: headerHmac({ header: 'x-adsk-signature', prefix: 'sha1hash=', algo: 'sha1', encoding: 'hex' }),
  bitbucket: headerHmac({ header: 'x-hub-signature', prefix: 'sha256=', algo: 'sha256', encoding: 'hex' }),
  bolt: headerHmac({ header: 'x-bolt-hmac-sha256', algo: 'sha256', encoding: 'base64' }),
  box,
  calendly: timestampedPairs('calendly-webhook-signature', 'v1'),
  castle: headerHmac({ header: 'x-castle-signature', algo: 'sha256', encoding: 'base64' }),
  coinbase: headerHmac({ header: 'x-cc-webhook-signature', algo: 'sha256', encoding: 'hex' }),
  contentful,
  brex: svix,
  buildkite,
  chargify: headerHmac({ header: 'x-chargify-webhook-signature-hmac-sha-256', algo: 'sha256', encoding: 'hex' }),
  circleci: headerHmac({ header: 'circleci-signature', prefix: 'v1=', separator: ',', algo: 'sha256', encoding: 'hex' }),
  clearbit: headerHmac({ header: 'x-request-signature', prefix: 'sha1=', algo: 'sha1', encoding: 'hex' }),
  clerk: svix,
  docusign: headerHmac({ header: 'x-docusign-signature-1', algo: 'sha256', encoding: 'base64' }),
  dropbox: headerHmac({ header: 'x-dropbox-signature', algo: 'sha256', encoding: 'hex' }),
  facebook_graph_api: meta,
  facebook_messenger: meta,
  frameio: headerHmac({
    header: 'x-frameio-signature', prefix: 'v0=', algo: 'sha256', encoding: 'hex',
    timestamp: { header: 'x-frameio-request-timestamp', unit: 's' }, message: (d, ts) => [`v0:${ts}:`, d.body],
  }),
  go1,
  github: headerHmac({ header: 'x-hub-signature-256', prefix: 'sha256=', algo: 'sha256', encoding: 'hex' }),
  gitlab,
  graphcms: hygraph,
  heroku: headerHmac({ header: 'heroku-webhook-hmac-sha256', algo: 'sha256', encoding: 'base64' }),
  hostedhooks,
  hubspot,
  instagram: meta,
  intercom: headerHmac({ header: 'x-hub-signature', prefix: 'sha1=', algo: 'sha1', encoding: 'hex' }),
  jira,
  launch_darkly: headerHmac({ header: 'x-ld-signature', algo: 'sha256', encoding: 'hex' }),
  linear,
  mailchimp: mandrill,
  mailgun,
  microsoft_teams: headerHmac({ header: 'authorization', prefix: 'HMAC ', algo: 'sha256', encoding: 'base64', key: (s) => Buffer.from(s, 'base64') }),
  modern_treasury: headerHmac({ header: 'x-signature', algo: 'sha256', encoding: 'hex' }),
  mongodb: headerHmac({ header: 'x-mms-signature', algo: 'sha1', encoding: 'base64' }),
  mux: timestampedPairs('mux-signature', 'v1'),
  orb,
  pagerduty: headerHmac({ header: 'x-pagerduty-signature', prefix: 'v1=', separator: ',', algo: 'sha256', encoding: 'hex' }),
  pinwheel,
  plivo,
  pusher: headerHmac({ header: 'x-pusher-signature', algo: 'sha256', encoding: 'hex' }),
  sendgrid,
  sentry: headerHmac({ header: 'sentry-hook-signature', algo: 'sha256', encoding: 'hex' }),
  shopify: headerHmac({ header: 'x-shopify-hmac-sha256', algo: 'sha256', encoding: 'base64' }),
  signal_sciences: sigsci,
  slack: headerHmac({
    header: 'x-slack-signature', prefix: 'v0=', algo: 'sha256', encoding: 'hex',
    timestamp: { header: 'x-slack-request-timestamp', unit: 's' }, message: (d, ts) => [`v0:${ts}:`, d.body],
  }),
  sonatype: nexus,
  square: headerHmac({ header: 'x-square-hmacsha256-signature', algo: 'sha256', encoding: 'base64', message: (d) => [d.url, d.body] }),
  stripe: timestampedPairs('stripe-signature', 'v1'),
  svix,
  terraform: headerHmac({ header: 'x-tfe-notification-signature', algo: 'sha512', encoding: 'hex' }),
  tiktok: timestampedPairs('tiktok-signature', 's'),
  trendmicro_conformity: conformity,
  twilio,
  twitter: headerHmac({ header: 'x-twitter-webhooks-signature', prefix: 'sha256=', algo: 'sha256', encoding: 'base64' }),
  typeform: headerHmac({ header: 'typeform-signature', prefix: 'sha256=', algo: 'sha256', encoding: 'base64' }),
  vmware,
  webex: headerHmac({ header: 'x-spark-signature', algo: 'sha1', encoding: 'hex' }),
  whatsapp: meta,
  worldline: headerHmac({ header: 'x-gcs-signature', algo: 'sha256', encoding: 'base64' }),
  xero: headerHmac({ header: 'x-xero-signature', algo: 'sha256', encoding: 'base64' }),
  zendesk: headerHmac({
    header: 'x-zendesk-webhook-signature', algo: 'sha256', encoding: 'base64',
    timestamp: { header: 'x-zendesk-webhook-signature-timestamp', unit: 'iso' }, message: (d, ts) => [ts, d.body],
  }),
  zoom: headerHmac({
    header: 'x-zm-signature', prefix: 'v0=', algo: 'sha256', encoding: 'hex',
    timestamp: { header: 'x-zm-request-timestamp', unit: 's' }, message: (d, ts) => [`v0:${ts}:`, d.body],
  }),
}

/**
 * Names ngrok's integration guides use for a provider whose identifier in ngrok's provider
 * table differs (the guides' policy files say `vmware_workspace`, `sonatype_nexus`, `signalsciences`); both work.
 */
export const PROVIDER_ALIASES: Readonly<Record<string, string>> = {
  vmware_workspace: 'vmware',
  sonatype_nexus: 'sonatype',
  signalsciences: 'signal_sciences',
}

/**
 * ngrok's providers gw does not verify, with why; naming one is refused at load, never let
 * through unverified.
 */
export const UNSUPPORTED_PROVIDERS: Readonly<Record<string, string>> = {
  sns: 'Amazon SNS signs with an AWS certificate that gw would have to fetch',
  orbit: 'Orbit\'s webhook docs name an X-Orbit-Signature header but never say how it is computed, so gw cannot check it faithfully',
}
