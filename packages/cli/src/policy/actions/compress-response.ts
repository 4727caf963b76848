/**
 * `compress-response`: gzip, br, deflate or (when listed) compress, chosen from the client's Accept-Encoding
 * (q-values honoured, ties go to the configured order) and streamed through zlib. It is
 * skipped when the response is already encoded, has no body (HEAD, 204, 304), is too
 * small to gain (`min_size`, gw's), is a stream that must not be buffered
 * (text/event-stream), is a format that is already compressed (images, video, archives),
 * or says `Cache-Control: no-transform`.
 */
import { constants, createBrotliCompress, createDeflate, createGzip } from 'node:zlib'
import { pipeline, type Transform } from 'node:stream'
import type { ActionDefinition } from '../action.js'
import { describe } from '../config-reader.js'
import { getHeader, removeHeaders, setHeader } from '../headers.js'
import { createLzwCompress } from '../lzw-compress.js'
import { setActionResult } from '../state.js'

const ALGORITHMS = ['br', 'gzip', 'deflate', 'compress'] as const
type Encoding = (typeof ALGORITHMS)[number]

const INCOMPRESSIBLE = /^(image\/(?!svg)|video\/|audio\/|application\/(zip|gzip|x-gzip|zstd|x-7z|x-rar|octet-stream|pdf|wasm)|font\/woff)/i

/** The best encoding both sides accept, or undefined. Exported for tests. */
export function negotiateEncoding(acceptEncoding: string | undefined, offered: readonly Encoding[]): Encoding | undefined {
  if (!acceptEncoding) return undefined
  const q = new Map<string, number>()
  for (const part of acceptEncoding.split(',')) {
    const [token, ...params] = part.trim().split(';')
    const name = token!.trim().toLowerCase()
    if (!name) continue
    let weight = 1
    for (const p of params) {
      const m = /^\s*q=([0-9.]+)\s*$/i.exec(p)
      if (m) weight = Number(m[1])
    }
    q.set(name, weight)
  }
  let best: Encoding | undefined
  let bestQ = 0
  for (const enc of offered) {
    const w = q.get(enc) ?? q.get('*') ?? 0
    if (w > bestQ) {
      best = enc
      bestQ = w
    }
  }
  return best
}

function createEncoder(enc: Encoding, level: number | undefined): Transform {
  // LZW has no levels and no flush (lzw-compress.ts); it is offered only when configured.
  if (enc === 'compress') return createLzwCompress()
  if (enc === 'br') {
    return createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: level ?? 4 } })
  }
  // Z_SYNC_FLUSH lets each upstream chunk out promptly, so streamed responses stay streamed.
  const opts = { level: level ?? 6, flush: constants.Z_SYNC_FLUSH }
  return enc === 'gzip' ? createGzip(opts) : createDeflate(opts)
}

const LENGTH: ReadonlySet<string> = new Set(['content-length'])
const noop = (): void => {}

export const compressResponse: ActionDefinition = {
  type: 'compress-response',
  phases: ['on_http_response'],
  compile(config) {
    const algorithms = config.stringList('algorithms', false)
    algorithms.forEach((a, i) => {
      if (!(ALGORITHMS as readonly string[]).includes(a)) throw config.errorAt([...config.path, 'algorithms', i], `${describe(a)} is not a supported algorithm`, ALGORITHMS)
    })
    const offered = (algorithms.length > 0 ? algorithms : ['gzip', 'br', 'deflate']) as Encoding[]
    const minSize = config.int('min_size', 256, 0, 1 << 30)
    const levelRaw = config.raw('level')
    const level = levelRaw === undefined ? undefined : config.int('level', undefined, 0, 11)
    config.done()

    return function compressResponseAction(state) {
      const req = state.request!
      const res = state.response!
      if (req.method === 'HEAD' || res.status === 204 || res.status === 304 || res.status < 200) return
      const raw = res.rawHeaders
      const existing = getHeader(raw, 'content-encoding')
      if (existing && existing.toLowerCase() !== 'identity') {
        setActionResult(state, 'ngrok', 'compress', { already_compressed: true, negotiated_algorithm: '' })
        return
      }
      const type = getHeader(raw, 'content-type') ?? ''
      if (INCOMPRESSIBLE.test(type) || type.startsWith('text/event-stream')) return
      if (/no-transform/i.test(getHeader(raw, 'cache-control') ?? '')) return
      const length = getHeader(raw, 'content-length')
      if (length !== undefined && Number(length) < minSize) return
      const enc = negotiateEncoding(getHeader(req.rawHeaders, 'accept-encoding'), offered)
      setActionResult(state, 'ngrok', 'compress', { already_compressed: false, negotiated_algorithm: enc ?? '' })
      if (!enc) return
      const encoder = createEncoder(enc, level)
      // pipeline, not pipe: if the client goes away and the encoder is destroyed, the
      // upstream body is destroyed too instead of being left paused.
      pipeline(res.body, encoder, noop)
      res.body = encoder
      removeHeaders(raw, LENGTH)
      setHeader(raw, 'content-encoding', enc)
      const vary = getHeader(raw, 'vary')
      if (!vary) raw.push('vary', 'Accept-Encoding')
      else if (!/accept-encoding|\*/i.test(vary)) setHeader(raw, 'vary', `${vary}, Accept-Encoding`)
      // A strong ETag names the identity bytes; the compressed body is a different entity.
      const etag = getHeader(raw, 'etag')
      if (etag && !etag.startsWith('W/')) setHeader(raw, 'etag', `W/${etag}`)
    }
  },
}
