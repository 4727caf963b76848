/**
 * `transform-body` (gw's): JSON → XML or XML → JSON, for the request (on_http_request)
 * or the response (on_http_response). Content-Type and Content-Length are set to match.
 * A body that is not of the `from` type is left alone, so the action can sit in front of
 * mixed traffic. Request bodies over `max_body_size` get 413; response bodies over it
 * pass through untransformed (they are already on their way).
 *
 * ```yaml
 * - type: transform-body
 *   config: {from: json, to: xml, root: order}
 * ```
 */
import { respondJson, type ActionDefinition } from '../action.js'
import { bufferRequestBody, DEFAULT_BODY_LIMIT, readUpTo, replaceBody, tooLarge } from '../body.js'
import { getHeader, setHeader } from '../headers.js'
import { setActionResult } from '../state.js'
import { isJsonType, isXmlType, jsonToXml, xmlToJson } from '../xml.js'

const FORMATS = ['json', 'xml'] as const
type Format = (typeof FORMATS)[number]

function convert(data: Buffer, from: Format, root: string | undefined): Buffer {
  if (from === 'json') return Buffer.from(jsonToXml(JSON.parse(data.toString('utf8')), root))
  return Buffer.from(JSON.stringify(xmlToJson(data.toString('utf8'))))
}

export const transformBody: ActionDefinition = {
  type: 'transform-body',
  phases: ['on_http_request', 'on_http_response'],
  compile(config, ctx) {
    const from = config.oneOf('from', FORMATS)
    const to = config.oneOf('to', FORMATS)
    if (from === to) config.fail('to', `must differ from from (${from})`, FORMATS.filter((f) => f !== from))
    // Without root, a single-key JSON object names the XML root element itself.
    const root = config.optString('root')
    if (root !== undefined && !/^[A-Za-z_][\w.-]*$/.test(root)) config.fail('root', 'must be a valid XML element name')
    const limit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    config.done()
    const matches = from === 'json' ? isJsonType : isXmlType
    const outType = to === 'json' ? 'application/json; charset=utf-8' : 'application/xml; charset=utf-8'

    if (ctx.phase === 'on_http_request') {
      return async function transformRequestBody(state) {
        const req = state.request!
        if (!matches(getHeader(req.rawHeaders, 'content-type') ?? '')) return
        const data = await bufferRequestBody(req, limit)
        if (data === undefined) return tooLarge(limit)
        if (data.length === 0) return
        let out: Buffer
        try {
          out = convert(data, from, root)
        } catch (err) {
          return respondJson(400, { error: 'invalid_body', message: `the ${from.toUpperCase()} body could not be converted: ${(err as Error).message}` })
        }
        replaceBody(req, out)
        setHeader(req.rawHeaders, 'content-type', outType)
        setActionResult(state, 'gw', 'transform_body', { transformed: true })
      }
    }
    return async function transformResponseBody(state) {
      const res = state.response!
      if (!matches(getHeader(res.rawHeaders, 'content-type') ?? '')) return
      const encoding = getHeader(res.rawHeaders, 'content-encoding')
      if (encoding && encoding !== 'identity') return
      const length = getHeader(res.rawHeaders, 'content-length')
      if (length !== undefined && Number(length) > limit) return
      const read = await readUpTo(res.body, limit)
      if ('stream' in read) {
        res.body = read.stream
        return
      }
      let out: Buffer
      try {
        out = convert(read.data, from, root)
      } catch (err) {
        return respondJson(502, { error: 'GW_ERR_POLICY_BAD_UPSTREAM_BODY', message: `the upstream ${from.toUpperCase()} body could not be converted: ${(err as Error).message}` }, [], 'GW_ERR_POLICY_BAD_UPSTREAM_BODY')
      }
      replaceBody(res, out)
      setHeader(res.rawHeaders, 'content-type', outType)
    }
  },
}
