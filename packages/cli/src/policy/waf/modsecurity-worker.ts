/**
 * The worker thread that runs ModSecurity v3 (libmodsecurity, through koffi's FFI) on the
 * OWASP Core Rule Set. libmodsecurity is synchronous and spends milliseconds per
 * transaction, so it runs here rather than on the agent's event loop; one transaction at
 * a time, in the order they arrive.
 *
 * The score and the matched rules come from ModSecurity's own log lines for the
 * transaction ("[id "942100"] [msg "…"] [data "…"] [severity "2"]"), which its C API
 * hands to a log callback.
 */
import { parentPort } from 'node:worker_threads'
import koffi from 'koffi'
import type { MatchedRule, WafAnswer, WafRequest } from './protocol.js'

const port = parentPort!
const libPath = process.env.GW_MODSECURITY_LIB || 'libmodsecurity.so.3'

const lib = koffi.load(libPath)
const LogCb = koffi.proto('void GwModSecLogCb(void *, const void *)')
const Intervention = koffi.struct('GwModSecurityIntervention', { status: 'int', pause: 'int', url: 'char *', log: 'char *', disruptive: 'int' })
const msc = {
  init: lib.func('void *msc_init(void)'),
  setConnectorInfo: lib.func('void msc_set_connector_info(void *, const char *)'),
  setLogCb: lib.func('void msc_set_log_cb(void *, GwModSecLogCb *)'),
  createRules: lib.func('void *msc_create_rules_set(void)'),
  addRules: lib.func('int msc_rules_add(void *, const char *, _Out_ const char **)'),
  newTransaction: lib.func('void *msc_new_transaction(void *, void *, void *)'),
  processConnection: lib.func('int msc_process_connection(void *, const char *, int, const char *, int)'),
  processUri: lib.func('int msc_process_uri(void *, const char *, const char *, const char *)'),
  addRequestHeader: lib.func('int msc_add_n_request_header(void *, const uint8_t *, size_t, const uint8_t *, size_t)'),
  processRequestHeaders: lib.func('int msc_process_request_headers(void *)'),
  appendRequestBody: lib.func('int msc_append_request_body(void *, const uint8_t *, size_t)'),
  processRequestBody: lib.func('int msc_process_request_body(void *)'),
  addResponseHeader: lib.func('int msc_add_n_response_header(void *, const uint8_t *, size_t, const uint8_t *, size_t)'),
  processResponseHeaders: lib.func('int msc_process_response_headers(void *, int, const char *)'),
  appendResponseBody: lib.func('int msc_append_response_body(void *, const uint8_t *, size_t)'),
  processResponseBody: lib.func('int msc_process_response_body(void *)'),
  intervention: lib.func('int msc_intervention(void *, _Inout_ GwModSecurityIntervention *)'),
  processLogging: lib.func('int msc_process_logging(void *)'),
  cleanup: lib.func('void msc_transaction_cleanup(void *)'),
}
void Intervention

const modsec = msc.init()
msc.setConnectorInfo(modsec, 'gw')
/** The log lines of the transaction running now (one at a time, so one list). */
let lines: string[] = []
const onLog = koffi.register((_data: unknown, message: unknown) => {
  if (message !== null) lines.push(koffi.decode(message, 'char', -1) as string)
}, koffi.pointer(LogCb))
msc.setLogCb(modsec, onLog)

const ruleSets = new Map<string, unknown>()

function rulesFor(text: string): unknown {
  let rules = ruleSets.get(text)
  if (rules === undefined) {
    rules = msc.createRules()
    const error: [string | null] = [null]
    if (msc.addRules(rules, text, error) < 0) throw new Error(`the Core Rule Set did not load: ${error[0] ?? 'no reason given'}`)
    ruleSets.set(text, rules)
  }
  return rules
}

const SEVERITY = ['EMERGENCY', 'ALERT', 'CRITICAL', 'ERROR', 'WARNING', 'NOTICE', 'INFO', 'DEBUG']
/** CRS's anomaly points per severity (crs-setup.conf: tx.critical_anomaly_score…). */
const POINTS: Record<string, number> = { CRITICAL: 5, ERROR: 4, WARNING: 3, NOTICE: 2 }

function field(line: string, name: string): string | undefined {
  const m = new RegExp(`\\[${name} "((?:[^"\\\\]|\\\\.)*)"\\]`).exec(line)
  return m?.[1]
}

/** The blocking evaluation and correlation rules score nothing themselves. */
function isEvaluationRule(id: number): boolean {
  return (id >= 949000 && id < 950000) || (id >= 959000 && id < 960000) || (id >= 980000 && id < 990000)
}

function evaluate(req: WafRequest): WafAnswer {
  const rules = rulesFor(req.rules)
  const t = req.transaction
  lines = []
  const tx = msc.newTransaction(modsec, rules, null)
  try {
    msc.processConnection(tx, t.clientIp, t.clientPort, '127.0.0.1', 0)
    msc.processUri(tx, t.uri, t.method, t.httpVersion)
    for (const [k, v] of t.requestHeaders) {
      const kb = Buffer.from(k, 'latin1')
      const vb = Buffer.from(v, 'latin1')
      msc.addRequestHeader(tx, kb, kb.length, vb, vb.length)
    }
    msc.processRequestHeaders(tx)
    if (t.requestBody && t.requestBody.length > 0) msc.appendRequestBody(tx, t.requestBody, t.requestBody.length)
    msc.processRequestBody(tx)
    if (t.response) {
      for (const [k, v] of t.response.headers) {
        const kb = Buffer.from(k, 'latin1')
        const vb = Buffer.from(v, 'latin1')
        msc.addResponseHeader(tx, kb, kb.length, vb, vb.length)
      }
      msc.processResponseHeaders(tx, t.response.status, `HTTP/${t.httpVersion}`)
      if (t.response.body && t.response.body.length > 0) msc.appendResponseBody(tx, t.response.body, t.response.body.length)
      msc.processResponseBody(tx)
    }
    const it = { status: 200, pause: 0, url: null, log: null, disruptive: 0 }
    msc.intervention(tx, it)
    msc.processLogging(tx)
    const matchedRules: MatchedRule[] = []
    let total: number | undefined
    for (const line of [...lines, ...(it.log ? [it.log as string] : [])]) {
      const id = Number(field(line, 'id'))
      if (!Number.isInteger(id) || id === 0) continue
      const message = field(line, 'msg') ?? ''
      if (isEvaluationRule(id)) {
        const score = /Total (?:Inbound |Outbound )?Score: (\d+)/.exec(message)
        if (score) total = Number(score[1])
        continue
      }
      if (matchedRules.some((r) => r.id === id)) continue
      const sev = Number(field(line, 'severity'))
      const severity = SEVERITY[sev] ?? String(field(line, 'severity') ?? '')
      if ((POINTS[severity] ?? 0) === 0) continue
      matchedRules.push({ id, message, severity, data: field(line, 'data') ?? '' })
    }
    const anomalyScore = total ?? matchedRules.reduce((n, r) => n + (POINTS[r.severity] ?? 0), 0)
    const blocked = it.disruptive !== 0 && it.status >= 400
    return { id: req.id, ok: true, blocked, status: it.status, anomalyScore, matchedRules }
  } finally {
    msc.cleanup(tx)
  }
}

port.on('message', (req: WafRequest) => {
  let answer: WafAnswer
  try {
    answer = evaluate(req)
  } catch (err) {
    answer = { id: req.id, ok: false, error: (err as Error).message }
  }
  port.postMessage(answer)
})
