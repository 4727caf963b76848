/**
 * `verify-webhook`: check a webhook's signature the way its provider signs it, over the
 * exact body bytes (read with a cap, then passed on unchanged). The schemes, one per
 * provider in ngrok's list that gw verifies, are in webhook-providers.ts; naming one of
 * ngrok's providers gw does not verify yet is refused at load with the reason, never
 * let through unverified.
 *
 * A failure answers 403 (401 for Xero, whose intent-to-receive check asks for it) unless
 * `enforce: false`; the result is in `actions.ngrok.verify_webhook.verified`. The endpoint
 * verification challenges of Twitter, Worldline, Xero and Zoom are answered here, as ngrok
 * does (CHALLENGES in webhook-providers.ts).
 */
import { respond, respondJson, type ActionDefinition } from '../action.js'
import { bufferRequestBody, DEFAULT_BODY_LIMIT, tooLarge } from '../body.js'
import { setActionResult } from '../state.js'
import { CHALLENGES, DEFAULT_TOLERANCE_MS, FAILURE_STATUS, PROVIDER_ALIASES, SECRET_CHECKS, UNSUPPORTED_PROVIDERS, WEBHOOK_PROVIDERS } from './webhook-providers.js'

const PROVIDERS = Object.keys(WEBHOOK_PROVIDERS).sort()

export const verifyWebhook: ActionDefinition = {
  type: 'verify-webhook',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const given = config.string('provider')
    const named = Object.hasOwn(PROVIDER_ALIASES, given) ? PROVIDER_ALIASES[given]! : given
    const why = Object.hasOwn(UNSUPPORTED_PROVIDERS, named) ? UNSUPPORTED_PROVIDERS[named] : undefined
    if (why !== undefined) config.fail('provider', `${JSON.stringify(given)} is one of ngrok's providers, but ${why}`, PROVIDERS)
    if (!Object.hasOwn(WEBHOOK_PROVIDERS, named)) config.fail('provider', `must be one of the providers gw verifies, got ${JSON.stringify(given)}`, PROVIDERS)
    const provider = named
    const verify = WEBHOOK_PROVIDERS[provider]!
    const challenge = Object.hasOwn(CHALLENGES, provider) ? CHALLENGES[provider] : undefined
    const failureStatus = Object.hasOwn(FAILURE_STATUS, provider) ? FAILURE_STATUS[provider]! : 403
    const secret = config.string('secret')
    if (secret.length === 0) config.fail('secret', 'must not be empty')
    const badSecret = SECRET_CHECKS[provider]?.(secret)
    if (badSecret !== undefined) config.fail('secret', badSecret)
    const enforce = config.bool('enforce', true)
    const toleranceMs = config.duration('tolerance', Object.hasOwn(DEFAULT_TOLERANCE_MS, provider) ? DEFAULT_TOLERANCE_MS[provider]! : 300_000, 0, 24 * 3_600_000)
    const limit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    config.done()
    return async function verifyWebhookAction(state) {
      const req = state.request!
      const body = await bufferRequestBody(req, limit)
      if (body === undefined) return tooLarge(limit)
      const delivery = {
        secret, rawHeaders: req.rawHeaders, body, method: req.method,
        url: `${req.scheme}://${req.host}${req.target}`, target: req.target, nowMs: ctx.clock(), toleranceMs,
      }
      const problem = verify(delivery)
      // ngrok's shape: verified, and error.{code, message} when it is not.
      setActionResult(state, 'ngrok', 'verify_webhook', {
        provider, verified: problem === undefined,
        ...(problem === undefined ? {} : { error: { code: 'invalid_signature', message: `${provider} webhook: ${problem}` } }),
      })
      const answer = challenge?.(delivery, problem === undefined)
      if (answer) return respond(answer.status, answer.headers, answer.body)
      if (problem && enforce) return respondJson(failureStatus, { error: 'invalid_signature', message: `${provider} webhook: ${problem}` })
    }
  },
}
