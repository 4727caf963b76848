/**
 * `owasp-crs-request` and `owasp-crs-response`: ngrok's WAF actions, the OWASP Core Rule
 * Set with anomaly scoring, run by ModSecurity in a worker thread (policy/waf/).
 *
 * - A request whose score reaches the inbound threshold (5) is answered 403
 *   `GW_ERR_POLICY_WAF_BLOCKED` and never reaches the upstream; a response whose score
 *   reaches the outbound threshold (4) is replaced by the same 403.
 * - `process_body: true` adds the first 4 KB of the body (not of a compressed response
 *   body); the whole body still goes on.
 * - `exclude_rule_ids` (900000–999999) are removed from the rule set.
 * - `actions.ngrok.owasp_crs_request` (or `_response`): `decision` (allow, deny),
 *   `anomaly_score`, `anomaly_score_threshold`, `matched_rules[]` (`id`, `message`,
 *   `severity`, `data`), and `error.code`/`error.message` when the rules could not run:
 *   then `on_error: halt` (the default) answers 500 `GW_ERR_POLICY_WAF_FAILED`, and
 *   `continue` goes on. As ngrok's "test mode" example has it, `on_error: continue` also
 *   records a deny without enforcing it.
 * - Without libmodsecurity and the CRS on the machine, the policy is refused at load
 *   with what to install.
 */
import { respondJson, type ActionDefinition, type ActionRunner } from '../action.js'
import { peekBody } from '../body.js'
import type { ConfigReader } from '../config-reader.js'
import { getHeader } from '../headers.js'
import { setActionResult, type PolicyState } from '../state.js'
import { evaluateWaf, holdWaf, type WafVerdict } from '../waf/client.js'
import { BODY_BYTES, crsPaths, crsRules, INBOUND_THRESHOLD, OUTBOUND_THRESHOLD, type CrsPhase } from '../waf/crs.js'
import type { WafTransaction } from '../waf/protocol.js'
import type { CompileContext } from '../action.js'

function pairs(raw: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!])
  return out
}

function compileCrs(phase: CrsPhase, config: ConfigReader, ctx: CompileContext): ActionRunner {
  const onError = config.oneOf('on_error', ['halt', 'continue'] as const, 'halt')
  const processBody = config.bool('process_body', false)
  const excluded = config.list('exclude_rule_ids', false).map((id, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 900000 || id > 999999) {
      throw config.errorAt([...config.path, 'exclude_rule_ids', i], `must be a CRS rule id from 900000 to 999999, got ${JSON.stringify(id)}`)
    }
    return id
  })
  config.done()
  const paths = crsPaths()
  if (typeof paths === 'string') config.fail(undefined, paths)
  const found = paths as Exclude<typeof paths, string>
  const rules = crsRules(found, phase, excluded)
  ctx.disposables.push(holdWaf())
  const name = phase === 'request' ? 'owasp_crs_request' : 'owasp_crs_response'
  const threshold = phase === 'request' ? INBOUND_THRESHOLD : OUTBOUND_THRESHOLD

  function record(state: PolicyState, verdict: WafVerdict | undefined, error?: string): void {
    setActionResult(state, 'ngrok', name, {
      decision: verdict?.blocked ? 'deny' : 'allow',
      anomaly_score: verdict?.anomalyScore ?? 0,
      anomaly_score_threshold: threshold,
      matched_rules: verdict?.matchedRules ?? [],
      ...(error !== undefined ? { error: { code: 'GW_ERR_POLICY_WAF_FAILED', message: error } } : {}),
    })
  }

  return async function owaspCrs(state) {
    const req = state.request!
    const transaction: WafTransaction = {
      clientIp: req.clientIp, clientPort: req.clientPort, method: req.method, uri: req.target,
      httpVersion: '1.1', requestHeaders: pairs(req.rawHeaders),
    }
    try {
      if (phase === 'request' && processBody) {
        const peeked = await peekBody(req.body, BODY_BYTES)
        req.body = peeked.body
        transaction.requestBody = peeked.head
      }
      if (phase === 'response') {
        const res = state.response!
        transaction.response = { status: res.status, headers: pairs(res.rawHeaders) }
        const encoding = getHeader(res.rawHeaders, 'content-encoding')
        if (processBody && (encoding === undefined || encoding.toLowerCase() === 'identity')) {
          const peeked = await peekBody(res.body, BODY_BYTES)
          res.body = peeked.body
          transaction.response.body = peeked.head
        }
      }
    } catch (err) {
      // ngrok: a body that cannot be read is answered 500, whatever on_error says.
      record(state, undefined, `the ${phase} body could not be read: ${(err as Error).message}`)
      return respondJson(500, { error: 'GW_ERR_POLICY_WAF_FAILED', message: `the ${phase} body could not be read for the OWASP CRS` }, [], 'GW_ERR_POLICY_WAF_FAILED')
    }
    let verdict: WafVerdict
    try {
      verdict = await evaluateWaf(found.lib, rules, transaction)
    } catch (err) {
      const message = (err as Error).message
      record(state, undefined, message)
      if (onError === 'continue') return
      return respondJson(500, { error: 'GW_ERR_POLICY_WAF_FAILED', message: `the OWASP CRS could not run: ${message}` }, [], 'GW_ERR_POLICY_WAF_FAILED')
    }
    record(state, verdict)
    // ngrok's "test mode" is on_error: continue: the decision is recorded, not enforced.
    if (!verdict.blocked || onError === 'continue') return
    if (phase === 'response') state.response!.body.resume()
    return respondJson(403, {
      error: 'GW_ERR_POLICY_WAF_BLOCKED',
      message: `the ${phase} was blocked by the OWASP Core Rule Set (anomaly score ${verdict.anomalyScore}, threshold ${threshold})`,
    }, [], 'GW_ERR_POLICY_WAF_BLOCKED')
  }
}

export const owaspCrsRequest: ActionDefinition = {
  type: 'owasp-crs-request',
  phases: ['on_http_request'],
  compile: (config, ctx) => compileCrs('request', config, ctx),
}

export const owaspCrsResponse: ActionDefinition = {
  type: 'owasp-crs-response',
  phases: ['on_http_response'],
  compile: (config, ctx) => compileCrs('response', config, ctx),
}
