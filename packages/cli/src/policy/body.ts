/**
 * Reading a body for the few actions that must (validate-request, transform-body, soap,
 * verify-webhook, jwt tokens in a body). Bodies are otherwise streamed; these read at
 * most `limit` bytes, and a body over the cap is refused with 413 before it is buffered:
 * at once when Content-Length says so, or as soon as the running total passes it.
 */
import { Readable } from 'node:stream'
import { respondJson, type RespondTerminal } from './action.js'
import { getHeader, removeHeaders, setHeader } from './headers.js'

export const DEFAULT_BODY_LIMIT = 1024 * 1024

/** The body, or undefined when it is larger than `limit`. The rest of a too-large body is drained, not buffered. */
export async function readBodyCapped(body: Readable, rawHeaders: readonly string[], limit: number): Promise<Buffer | undefined> {
  const declared = getHeader(rawHeaders, 'content-length')
  if (declared !== undefined && Number(declared) > limit) {
    body.resume()
    return undefined
  }
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string)
    total += buf.length
    if (total > limit) {
      // Drain the rest so the stream it came from (a yamux stream) is not left stuck.
      body.resume()
      return undefined
    }
    chunks.push(buf)
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total)
}

/** Replace a body that was read: a new stream and a Content-Length that matches it. */
export function replaceBody(target: { body: Readable; rawHeaders: string[] }, data: Buffer): void {
  target.body = Readable.from(data.length === 0 ? [] : [data])
  removeHeaders(target.rawHeaders, TRANSFER_ENCODING)
  setHeader(target.rawHeaders, 'content-length', String(data.length))
}

const TRANSFER_ENCODING: ReadonlySet<string> = new Set(['transfer-encoding'])

export function tooLarge(limit: number): RespondTerminal {
  return respondJson(413, { error: 'GW_ERR_POLICY_BODY_TOO_LARGE', message: `the request body exceeds ${limit} bytes` }, [], 'GW_ERR_POLICY_BODY_TOO_LARGE')
}

/** Read the request body for an action; undefined means the action should answer `tooLarge`. The body is replaced so it still reaches the upstream. */
export async function bufferRequestBody(req: { body: Readable; rawHeaders: string[] }, limit: number): Promise<Buffer | undefined> {
  const data = await readBodyCapped(req.body, req.rawHeaders, limit)
  if (data !== undefined) replaceBody(req, data)
  return data
}

/**
 * Read up to `limit` bytes of a response body. Over the cap nothing is lost: the result
 * is a stream that replays what was read and continues with the rest, so the response
 * can pass through untransformed.
 */
export async function readUpTo(body: Readable, limit: number): Promise<{ data: Buffer } | { stream: Readable }> {
  const chunks: Buffer[] = []
  let total = 0
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>
  for (;;) {
    const r = await it.next()
    if (r.done) return { data: Buffer.concat(chunks, total) }
    const buf = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
    chunks.push(buf)
    total += buf.length
    if (total > limit) {
      return {
        stream: Readable.from((async function* replay() {
          yield* chunks
          for (;;) {
            const next = await it.next()
            if (next.done) return
            yield next.value
          }
        })()),
      }
    }
  }
}

/**
 * The first `limit` bytes of a body, and a stream that is the whole body again (what was
 * read, then the rest), for actions that look at the start of a body without holding it.
 */
export async function peekBody(body: Readable, limit: number): Promise<{ head: Buffer; body: Readable }> {
  const chunks: Buffer[] = []
  let total = 0
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>
  let done = false
  while (total < limit) {
    const r = await it.next()
    if (r.done) {
      done = true
      break
    }
    const buf = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
    chunks.push(buf)
    total += buf.length
  }
  const all = Buffer.concat(chunks, total)
  const head = all.subarray(0, limit)
  if (done) return { head, body: Readable.from(total === 0 ? [] : [all]) }
  return {
    head,
    body: Readable.from((async function* replay() {
      yield all
      for (;;) {
        const next = await it.next()
        if (next.done) return
        yield next.value
      }
    })()),
  }
}
