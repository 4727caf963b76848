/**
 * `verify-webhook`: check a webhook's HMAC signature the way each provider signs it,
 * over the exact body bytes (read with a cap, then passed on unchanged):
 *
 * - github: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
 * - stripe: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (any v1 may match).
 * - slack:  `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>` with
 *           `X-Slack-Request-Timestamp: <ts>`.
 *
 * Stripe and Slack sign a timestamp; it must be within `tolerance` (default 5m) of the
 * agent's clock, which stops replays of old deliveries. Digests are compared in constant
 * time. A failure answers 403 unless `enforce: false`; the result is in
 * `actions.ngrok.verify_webhook.verified`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { respondJson, type ActionDefinition } from '../action.js'
import { bufferRequestBody, DEFAULT_BODY_LIMIT, tooLarge } from '../body.js'
import { getHeader } from '../headers.js'
import { setActionResult } from '../state.js'

const PROVIDERS = ['github', 'stripe', 'slack'] as const
type Provider = (typeof PROVIDERS)[number]

function hmacHex(secret: string, ...parts: Array<string | Buffer>): Buffer {
  const h = createHmac('sha256', secret)
  for (const p of parts) h.update(p)
  return Buffer.from(h.digest('hex'))
}

function sameHex(expected: Buffer, presented: string): boolean {
  const p = Buffer.from(presented.toLowerCase())
  return p.length === expected.length && timingSafeEqual(p, expected)
}

/** Returns undefined when verified, else why not. */
export function verifySignature(provider: Provider, secret: string, headers: readonly string[], body: Buffer, nowMs: number, toleranceMs: number): string | undefined {
  const fresh = (ts: number): string | undefined =>
    Number.isFinite(ts) && Math.abs(nowMs / 1000 - ts) <= toleranceMs / 1000 ? undefined : 'the signature timestamp is outside the tolerance'
  switch (provider) {
    case 'github': {
      const sig = getHeader(headers, 'x-hub-signature-256')
      if (!sig?.startsWith('sha256=')) return 'the X-Hub-Signature-256 header is missing'
      return sameHex(hmacHex(secret, body), sig.slice(7)) ? undefined : 'the signature does not match'
    }
    case 'stripe': {
      const sig = getHeader(headers, 'stripe-signature')
      if (!sig) return 'the Stripe-Signature header is missing'
      let t: string | undefined
      const v1: string[] = []
      for (const part of sig.split(',')) {
        const eq = part.indexOf('=')
        const k = part.slice(0, eq).trim()
        const v = part.slice(eq + 1).trim()
        if (k === 't') t = v
        else if (k === 'v1') v1.push(v)
      }
      if (!t || v1.length === 0) return 'the Stripe-Signature header lacks t= or v1='
      const expected = hmacHex(secret, `${t}.`, body)
      if (!v1.some((v) => sameHex(expected, v))) return 'the signature does not match'
      return fresh(Number(t))
    }
    case 'slack': {
      const sig = getHeader(headers, 'x-slack-signature')
      const ts = getHeader(headers, 'x-slack-request-timestamp')
      if (!sig?.startsWith('v0=') || !ts) return 'the X-Slack-Signature or X-Slack-Request-Timestamp header is missing'
      if (!sameHex(hmacHex(secret, `v0:${ts}:`, body), sig.slice(3))) return 'the signature does not match'
      return fresh(Number(ts))
    }
  }
}

export const verifyWebhook: ActionDefinition = {
  type: 'verify-webhook',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const provider = config.oneOf('provider', PROVIDERS)
    const secret = config.string('secret')
    if (secret.length === 0) config.fail('secret', 'must not be empty')
    const enforce = config.bool('enforce', true)
    const toleranceMs = config.duration('tolerance', 300_000, 0, 24 * 3_600_000)
    const limit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    config.done()
    return async function verifyWebhookAction(state) {
      const req = state.request!
      const body = await bufferRequestBody(req, limit)
      if (body === undefined) return tooLarge(limit)
      const problem = verifySignature(provider, secret, req.rawHeaders, body, ctx.clock(), toleranceMs)
      setActionResult(state, 'ngrok', 'verify_webhook', { provider, verified: problem === undefined, error: problem ?? '' })
      if (problem && enforce) return respondJson(403, { error: 'invalid_signature', message: `${provider} webhook: ${problem}` })
    }
  },
}
