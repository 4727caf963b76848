/**
 * Replay bookkeeping: turn a captured record, optionally edited, into the request the
 * agent sends straight to the upstream. The agent does the sending (`ReplayFn`) and
 * emits the usual exchange events with `replayOf` set, so a replay shows up in the
 * capture like any request, marked as a replay.
 *
 * A body cut at the capture limit is refused rather than replayed short: a webhook
 * replayed with half its JSON fails in ways that are hard to tell from a real bug.
 * Sending a new body in the modifications is the way round it.
 */
import type { Capture, CaptureRecord } from './capture.js'
import { InspectError } from './errors.js'

export interface ReplayRequest {
  method: string
  target: string
  rawHeaders: string[]
  body: Buffer
}

/** Provided by the agent: sends to the upstream of `tunnel`, resolves when it is done. */
export type ReplayFn = (request: ReplayRequest, replayOf: string, tunnel: string) => Promise<void>

/** Edits for "replay with modifications"; any field left out keeps the captured value. */
export interface ReplayModifications {
  method?: string
  /** Path and query, e.g. `/hooks?x=1`. */
  target?: string
  /** Raw pairs `[name, value, …]`; replaces every captured header. */
  rawHeaders?: string[]
  /** The new body as text (UTF-8)… */
  body?: string
  /** …or as base64, for binary bodies. */
  bodyBase64?: string
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// Field values may hold any visible byte and tabs/spaces, never CR, LF or NUL.
const FIELD_VALUE = /^[^\r\n\0]*$/
const FRAMING = new Set(['content-length', 'transfer-encoding'])

function invalid(message: string): never {
  throw new InspectError('GW_ERR_REPLAY_INVALID', message)
}

/** Checks modifications that came from JSON, so any shape may arrive. */
export function parseModifications(value: unknown): ReplayModifications | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) invalid('modifications must be an object')
  const m = value as Record<string, unknown>
  const out: ReplayModifications = {}
  if (m.method !== undefined) {
    if (typeof m.method !== 'string' || !TOKEN.test(m.method)) invalid('method must be an HTTP token')
    out.method = m.method
  }
  const target = m.target ?? m.path ?? m.uri
  if (target !== undefined) {
    if (typeof target !== 'string' || !/^\/[^\s]*$/.test(target)) invalid('the path must start with / and hold no spaces')
    out.target = target
  }
  if (m.headers !== undefined) out.rawHeaders = parseHeaders(m.headers)
  if (m.body !== undefined) {
    if (typeof m.body !== 'string') invalid('body must be a string')
    out.body = m.body
  }
  if (m.body_base64 !== undefined || m.bodyBase64 !== undefined) {
    const b64 = m.body_base64 ?? m.bodyBase64
    if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) invalid('body_base64 must be base64')
    out.bodyBase64 = b64
  }
  return out
}

/** Headers as `[[name, value], …]`, a flat raw list, or `{name: value | [values]}`. */
function parseHeaders(value: unknown): string[] {
  const raw: string[] = []
  if (Array.isArray(value)) {
    if (value.every((v) => Array.isArray(v))) {
      for (const pair of value as unknown[][]) {
        if (pair.length !== 2) invalid('each header must be a [name, value] pair')
        raw.push(String(pair[0]), String(pair[1]))
      }
    } else {
      if (value.length % 2 !== 0) invalid('a raw header list has an even length')
      for (const v of value) raw.push(String(v))
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [name, v] of Object.entries(value)) {
      for (const one of Array.isArray(v) ? v : [v]) raw.push(name, String(one))
    }
  } else invalid('headers must be a list or an object')
  for (let i = 0; i < raw.length; i += 2) {
    if (!TOKEN.test(raw[i]!)) invalid(`invalid header name ${JSON.stringify(raw[i])}`)
    if (!FIELD_VALUE.test(raw[i + 1]!)) invalid(`invalid value for header ${raw[i]}`)
  }
  return raw
}

/** The request to send for `record`, with `mods` applied. */
export function buildReplayRequest(record: CaptureRecord, mods?: ReplayModifications): ReplayRequest {
  const req = record.exchange.request
  let body: Buffer
  let bodyChanged = false
  if (mods?.bodyBase64 !== undefined) {
    body = Buffer.from(mods.bodyBase64, 'base64')
    bodyChanged = true
  } else if (mods?.body !== undefined) {
    body = Buffer.from(mods.body, 'utf8')
    bodyChanged = true
  } else {
    if (record.requestBody.truncated) {
      throw new InspectError(
        'GW_ERR_REPLAY_BODY_TRUNCATED',
        `the captured body kept ${record.requestBody.bytes.length} of ${record.requestBody.size} bytes; raise --inspect-body-limit or send a new body`,
      )
    }
    body = record.requestBody.bytes
  }
  const captured = mods?.rawHeaders ?? req.rawHeaders
  // The body is sent whole, so the framing is ours to state: drop chunked encoding and
  // any stale length, and give the real one when there is a body or there was a length.
  const hadLength = captured.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'content-length')
  const rawHeaders: string[] = []
  for (let i = 0; i + 1 < captured.length; i += 2) {
    if (!FRAMING.has(captured[i]!.toLowerCase())) rawHeaders.push(captured[i]!, captured[i + 1]!)
  }
  if (body.length > 0 || hadLength || bodyChanged) rawHeaders.push('Content-Length', String(body.length))
  return { method: mods?.method ?? req.method, target: mods?.target ?? req.target, rawHeaders, body }
}

/** Replays a captured request by id; throws `InspectError` with a stable code. */
export async function replayCaptured(
  capture: Capture,
  replay: ReplayFn,
  id: string,
  mods?: ReplayModifications,
  /** Another tunnel to replay against; default the one it came through. */
  tunnel?: string,
): Promise<void> {
  if (!capture.enabled) throw new InspectError('GW_ERR_INSPECT_DISABLED')
  const record = capture.get(id)
  if (record === undefined) throw new InspectError('GW_ERR_REQUEST_NOT_FOUND', `no captured request has id ${id}`)
  const request = buildReplayRequest(record, mods)
  try {
    await replay(request, record.id, tunnel ?? record.exchange.tunnel)
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown }
    const detail = typeof e?.code === 'string' ? `${e.code}: ${String(e.message)}` : String(e?.message ?? err)
    throw new InspectError('GW_ERR_REPLAY_FAILED', `the replay failed: ${detail}`, { cause: err })
  }
}
