/**
 * HTTP/1.1 text of captured heads: ngrok's API gives each request and response as `raw`
 * (base64 of head and body), and the TUI and the web inspector show the same lines. The
 * heads are rebuilt from the raw header pairs, so order, case and duplicates are as the
 * client and the upstream sent them.
 */
import type { Exchange } from '../agent/events.js'
import type { CaptureRecord } from './capture.js'

export function requestLine(exchange: Exchange): string {
  const r = exchange.request
  return `${r.method} ${r.target} HTTP/${r.httpVersion}`
}

export function statusText(exchange: Exchange): string | undefined {
  const res = exchange.response
  if (res === undefined) return undefined
  return res.statusMessage === '' ? String(res.status) : `${res.status} ${res.statusMessage}`
}

export function statusLine(exchange: Exchange): string | undefined {
  const text = statusText(exchange)
  return text === undefined ? undefined : `HTTP/${exchange.request.httpVersion} ${text}`
}

function head(firstLine: string, rawHeaders: readonly string[]): string {
  let out = firstLine + '\r\n'
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) out += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`
  return out + '\r\n'
}

export function rawRequest(record: CaptureRecord): Buffer {
  const ex = record.exchange
  return Buffer.concat([Buffer.from(head(requestLine(ex), ex.request.rawHeaders), 'latin1'), record.requestBody.bytes])
}

export function rawResponse(record: CaptureRecord): Buffer | undefined {
  const ex = record.exchange
  const line = statusLine(ex)
  if (line === undefined || ex.response === undefined) return undefined
  return Buffer.concat([Buffer.from(head(line, ex.response.rawHeaders), 'latin1'), record.responseBody.bytes])
}

/** Header pairs grouped by name as Go's `http.Header` (ngrok's `headers: {k: [v]}`). */
export function headerMap(rawHeaders: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null)
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = canonicalHeaderKey(rawHeaders[i]!)
    ;(out[name] ??= []).push(rawHeaders[i + 1]!)
  }
  return out
}

/** Go's CanonicalMIMEHeaderKey: `content-type` → `Content-Type`, as ngrok prints them. */
export function canonicalHeaderKey(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase())
}

export function findHeader(rawHeaders: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === lowerName) return rawHeaders[i + 1]
  }
  return undefined
}

/** The path without the query, for lists and filters. */
export function pathOf(target: string): string {
  const q = target.indexOf('?')
  return q === -1 ? target : target.slice(0, q)
}
