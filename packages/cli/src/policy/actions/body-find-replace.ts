/**
 * `request-body-find-replace` (on_http_request) and `response-body-find-replace`
 * (on_http_response), as ngrok documents them: the whole body is read, each
 * `replacements` rule (RE2 `from`, `to` with `$1`) replaces every match in order, and
 * Content-Length follows. Only UTF-8 text is rewritten; a body that is not (an image, a
 * protobuf) passes unchanged.
 *
 * A response the upstream compressed (gzip, deflate, br) is decompressed, rewritten and
 * sent uncompressed, so a compressed upstream never slips past a redaction rule. Bodies
 * are read up to `max_body_size` (gw's field, default 1 MiB): a larger request gets 413
 * `GW_ERR_POLICY_BODY_TOO_LARGE`, a larger response 502
 * `GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE` rather than reaching the client unredacted.
 * The result is `actions.ngrok.<request|response>_body_find_replace.replacements`.
 */
import { promisify } from 'node:util'
import { brotliDecompress, gunzip, inflate } from 'node:zlib'
import { respondJson, type ActionDefinition } from '../action.js'
import { bufferRequestBody, DEFAULT_BODY_LIMIT, readUpTo, replaceBody, tooLarge } from '../body.js'
import { applyReplacements, decodeText, readReplacements, type ReplacementMatch } from '../find-replace.js'
import { getHeader, removeHeaders } from '../headers.js'
import { setActionResult } from '../state.js'

const DECOMPRESS: Record<string, (b: Buffer) => Promise<Buffer>> = {
  gzip: promisify(gunzip), 'x-gzip': promisify(gunzip), deflate: promisify(inflate), br: promisify(brotliDecompress),
}
const CONTENT_ENCODING: ReadonlySet<string> = new Set(['content-encoding'])

export const requestBodyFindReplace: ActionDefinition = {
  type: 'request-body-find-replace',
  phases: ['on_http_request'],
  compile(config) {
    const rules = readReplacements(config)
    const limit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    config.done()
    return async function requestBodyFindReplaceAction(state) {
      const req = state.request!
      const data = await bufferRequestBody(req, limit)
      if (data === undefined) return tooLarge(limit)
      const matches: ReplacementMatch[] = []
      const text = decodeText(data)
      if (text !== undefined && data.length > 0) {
        const out = applyReplacements(text, rules, state.root!, matches)
        if (matches.length > 0) replaceBody(req, Buffer.from(out))
      }
      setActionResult(state, 'ngrok', 'request_body_find_replace', { replacements: matches })
    }
  },
}

export const responseBodyFindReplace: ActionDefinition = {
  type: 'response-body-find-replace',
  phases: ['on_http_response'],
  compile(config) {
    const rules = readReplacements(config)
    const limit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    config.done()
    const tooBig = () => respondJson(502, {
      error: 'GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE',
      message: `the upstream's response body exceeds the ${limit} bytes response-body-find-replace may read (max_body_size)`,
    }, [], 'GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE')
    return async function responseBodyFindReplaceAction(state) {
      const res = state.response!
      const matches: ReplacementMatch[] = []
      setActionResult(state, 'ngrok', 'response_body_find_replace', { replacements: matches })
      const length = getHeader(res.rawHeaders, 'content-length')
      if (length !== undefined && Number(length) > limit) {
        res.body.resume()
        return tooBig()
      }
      const read = await readUpTo(res.body, limit)
      if ('stream' in read) {
        read.stream.resume()
        return tooBig()
      }
      let data = read.data
      const encoding = getHeader(res.rawHeaders, 'content-encoding')?.trim().toLowerCase()
      const decompress = encoding && encoding !== 'identity' ? DECOMPRESS[encoding] : undefined
      if (encoding && encoding !== 'identity') {
        if (!decompress) {
          // An encoding gw cannot undo (a chain, zstd…): the body is put back as it came.
          replaceBody(res, data)
          return
        }
        try {
          data = await decompress(data)
        } catch (err) {
          return respondJson(502, { error: 'GW_ERR_POLICY_BAD_UPSTREAM_BODY', message: `the upstream's ${encoding} body could not be decompressed: ${(err as Error).message}` }, [], 'GW_ERR_POLICY_BAD_UPSTREAM_BODY')
        }
        if (data.length > limit) return tooBig()
      }
      const text = decodeText(data)
      const out = text !== undefined && data.length > 0 ? applyReplacements(text, rules, state.root!, matches) : undefined
      if (matches.length > 0) {
        removeHeaders(res.rawHeaders, CONTENT_ENCODING)
        replaceBody(res, Buffer.from(out!))
      } else {
        replaceBody(res, read.data)
      }
    }
  },
}
