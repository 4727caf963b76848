/**
 * `soap` (gw's): a REST → SOAP bridge. A JSON request becomes a SOAP 1.1 or 1.2
 * envelope, POSTed with its SOAPAction; the SOAP reply comes back as JSON.
 *
 * ```yaml
 * - type: soap
 *   config:
 *     version: "1.1"                      # or "1.2"
 *     namespace: http://example.com/stock
 *     operation: GetPrice                 # default: the last path segment; ${…} allowed
 *     action: http://example.com/stock/GetPrice   # default: <namespace>/<operation>
 *     path: /soap                         # the SOAP endpoint on the upstream; default: unchanged
 * ```
 *
 * The JSON object becomes the operation element's children (qualified by `namespace`).
 * A successful reply is answered 200 with the response element's content as JSON. A
 * fault is answered with its fault string: a client/sender fault as 400, a server/receiver
 * fault (or anything else) as 502 with `gw-error-code: GW_ERR_POLICY_SOAP_FAULT`.
 */
import { Readable } from 'node:stream'
import { respondJson, type ActionDefinition } from '../action.js'
import { bufferRequestBody, DEFAULT_BODY_LIMIT, readUpTo, replaceBody, tooLarge } from '../body.js'
import { templateAt } from '../compile-helpers.js'
import { removeHeaders, setHeader } from '../headers.js'
import { addResponseHook, setActionResult, type PolicyState } from '../state.js'
import { jsonToXmlFragment, xmlToJson } from '../xml.js'

const NS = { '1.1': 'http://schemas.xmlsoap.org/soap/envelope/', '1.2': 'http://www.w3.org/2003/05/soap-envelope' } as const
const DROP_ON_REQUEST: ReadonlySet<string> = new Set(['soapaction', 'accept', 'content-type'])

function qualify(value: unknown, prefix: string): unknown {
  if (Array.isArray(value)) return value.map((v) => qualify(v, prefix))
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) {
      out[k.startsWith('@_') || k === '#text' || k.includes(':') ? k : `${prefix}:${k}`] = qualify(v, prefix)
    }
    return out
  }
  return value
}

function text(v: unknown): string {
  if (v === undefined || v === null) return ''
  if (typeof v === 'object') {
    const t = (v as Record<string, unknown>)['#text']
    if (t !== undefined) return String(t)
    const first = Object.values(v as Record<string, unknown>).find((x) => !(typeof x === 'string' && x === ''))
    return first === undefined ? '' : text(first)
  }
  return String(v)
}

/** Turn a SOAP envelope into the client's status and JSON. Exported for tests. */
export function soapReplyToJson(xml: string): { status: number; body: Record<string, unknown>; fault: boolean } {
  const doc = xmlToJson(xml, { removeNSPrefix: true })
  const envelope = doc.Envelope as Record<string, unknown> | undefined
  const body = envelope?.Body as Record<string, unknown> | undefined
  if (!envelope || body === undefined) throw new Error('the reply is not a SOAP envelope')
  const fault = (typeof body === 'object' && body ? body.Fault : undefined) as Record<string, unknown> | undefined
  if (fault) {
    // 1.1: faultcode/faultstring/detail; 1.2: Code/Value, Reason/Text, Detail.
    const code = text(fault.faultcode ?? (fault.Code as Record<string, unknown> | undefined)?.Value)
    const message = text(fault.faultstring ?? (fault.Reason as Record<string, unknown> | undefined)?.Text)
    const detail = fault.detail ?? fault.Detail
    const client = /(^|:)(Client|Sender)\b/.test(code)
    return { status: client ? 400 : 502, fault: true, body: { error: 'soap_fault', code, message, ...(detail === undefined || detail === '' ? {} : { detail }) } }
  }
  const entries = typeof body === 'object' && body ? Object.entries(body).filter(([k]) => !k.startsWith('@_')) : []
  const content = entries.length === 1 ? entries[0]![1] : Object.fromEntries(entries)
  const clean = content && typeof content === 'object' && !Array.isArray(content)
    ? Object.fromEntries(Object.entries(content).filter(([k]) => !k.startsWith('@_')))
    : content
  return { status: 200, fault: false, body: (clean && typeof clean === 'object' ? clean : { value: clean }) as Record<string, unknown> }
}

export const soap: ActionDefinition = {
  type: 'soap',
  phases: ['on_http_request'],
  compile(config) {
    const version = config.oneOf('version', ['1.1', '1.2'] as const, '1.1')
    const namespace = config.string('namespace')
    const operationText = config.optTemplate('operation')
    const operation = operationText === undefined ? undefined : templateAt(config, config.at('operation'), operationText)
    const actionText = config.optTemplate('action')
    const action = actionText === undefined ? undefined : templateAt(config, config.at('action'), actionText)
    const pathText = config.optTemplate('path')
    const path = pathText === undefined ? undefined : templateAt(config, config.at('path'), pathText)
    const limit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    config.done()
    const envNs = NS[version]

    async function convertReply(state: PolicyState): Promise<void> {
      const res = state.response!
      const read = await readUpTo(res.body, limit)
      let status: number
      let json: Record<string, unknown>
      let errorCode: string | undefined
      if ('stream' in read) {
        read.stream.resume()
        status = 502
        json = { error: 'GW_ERR_POLICY_BAD_UPSTREAM_BODY', message: `the SOAP reply exceeds ${limit} bytes` }
        errorCode = 'GW_ERR_POLICY_BAD_UPSTREAM_BODY'
      } else {
        try {
          const r = soapReplyToJson(read.data.toString('utf8'))
          status = r.status
          json = r.body
          if (r.fault && status >= 500) errorCode = 'GW_ERR_POLICY_SOAP_FAULT'
        } catch (err) {
          status = 502
          json = { error: 'GW_ERR_POLICY_BAD_UPSTREAM_BODY', message: `the SOAP service answered ${res.status} with no SOAP envelope: ${(err as Error).message}` }
          errorCode = 'GW_ERR_POLICY_BAD_UPSTREAM_BODY'
        }
      }
      const data = Buffer.from(JSON.stringify(json))
      const headers = ['content-type', 'application/json; charset=utf-8', 'content-length', String(data.length)]
      state.response = { status, rawHeaders: headers, body: Readable.from([data]), ...(errorCode ? { errorCode } : {}) }
    }

    return async function soapAction(state) {
      const req = state.request!
      const data = await bufferRequestBody(req, limit)
      if (data === undefined) return tooLarge(limit)
      let args: unknown = {}
      if (data.length > 0) {
        try {
          args = JSON.parse(data.toString('utf8'))
        } catch (err) {
          return respondJson(400, { error: 'invalid_body', message: `the request body is not JSON: ${(err as Error).message}` })
        }
      }
      if (!args || typeof args !== 'object' || Array.isArray(args)) return respondJson(400, { error: 'invalid_body', message: 'the request body must be a JSON object' })
      const root = state.root!
      const q = req.target.indexOf('?')
      const reqPath = q === -1 ? req.target : req.target.slice(0, q)
      const op = operation ? operation(root) : reqPath.split('/').filter(Boolean).pop() ?? ''
      if (!/^[A-Za-z_][\w.-]*$/.test(op)) return respondJson(400, { error: 'invalid_operation', message: `${JSON.stringify(op)} is not a valid SOAP operation name` })
      const soapAction = action ? action(root) : `${namespace.replace(/\/$/, '')}/${op}`
      let inner: string
      try {
        inner = jsonToXmlFragment({ [`m:${op}`]: { '@_xmlns:m': namespace, ...(qualify(args, 'm') as Record<string, unknown>) } })
      } catch (err) {
        return respondJson(400, { error: 'invalid_body', message: (err as Error).message })
      }
      const envelope = `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="${envNs}"><soap:Body>${inner}</soap:Body></soap:Envelope>`
      replaceBody(req, Buffer.from(envelope))
      removeHeaders(req.rawHeaders, DROP_ON_REQUEST)
      if (version === '1.1') {
        req.rawHeaders.push('content-type', 'text/xml; charset=utf-8', 'soapaction', `"${soapAction}"`, 'accept', 'text/xml')
      } else {
        req.rawHeaders.push('content-type', `application/soap+xml; charset=utf-8; action="${soapAction}"`, 'accept', 'application/soap+xml')
      }
      req.method = 'POST'
      if (path) {
        const p = path(root)
        req.target = p.startsWith('/') ? p : `/${p}`
      }
      setHeader(req.rawHeaders, 'content-length', String(Buffer.byteLength(envelope)))
      setActionResult(state, 'gw', 'soap', { operation: op, action: soapAction, version })
      addResponseHook(state, convertReply)
    }
  },
}
