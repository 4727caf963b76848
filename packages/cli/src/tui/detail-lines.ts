/**
 * The detail view as a list of lines, built once per record and scrolled by the view:
 * request and response lines, headers, body previews (JSON/XML indented, binary as hex,
 * the truncation stated) and the timing split relay → agent → upstream.
 */
import type { CaptureRecord } from '../inspect/capture.js'
import { previewBody } from '../inspect/body-preview.js'
import { findHeader, requestLine, statusLine } from '../inspect/http-text.js'
import { formatBytes, formatDuration, timingSplit } from '../inspect/timing.js'
import { statusColor } from './format.js'

export interface DetailLine {
  text: string
  color?: string
  bold?: boolean
  dim?: boolean
}

/** Body lines past this are summarised: the TUI is for a glance, the web page for more. */
const MAX_BODY_LINES = 400

function headerLines(rawHeaders: readonly string[]): DetailLine[] {
  const out: DetailLine[] = []
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) out.push({ text: `  ${rawHeaders[i]}: ${rawHeaders[i + 1]}` })
  if (out.length === 0) out.push({ text: '  (no headers)', dim: true })
  return out
}

function bodyLines(title: string, body: CaptureRecord['requestBody'], rawHeaders: readonly string[]): DetailLine[] {
  const preview = previewBody(body, {
    contentType: findHeader(rawHeaders, 'content-type'),
    contentEncoding: findHeader(rawHeaders, 'content-encoding'),
    maxLines: MAX_BODY_LINES + 1,
  })
  if (preview.kind === 'empty') return [{ text: `── ${title}: empty`, bold: true }]
  const facts = [preview.kind, formatBytes(body.size)]
  if (preview.decoded) facts.push(`${preview.decoded} decoded`)
  const out: DetailLine[] = [{ text: `── ${title} (${facts.join(', ')})`, bold: true }]
  if (preview.note) out.push({ text: `  truncated: ${preview.note}`, color: 'yellow' })
  const lines = preview.lines.slice(0, MAX_BODY_LINES)
  for (const line of lines) out.push({ text: `  ${line}` })
  if (preview.lines.length > MAX_BODY_LINES) out.push({ text: `  … more in the web inspector`, dim: true })
  return out
}

export function detailLines(record: CaptureRecord): DetailLine[] {
  const ex = record.exchange
  const out: DetailLine[] = []
  const status = ex.response?.status
  out.push({ text: requestLine(ex), bold: true })
  const response = statusLine(ex)
  out.push(response === undefined ? { text: record.state === 'open' ? '(waiting for the response)' : '(no response)', dim: true } : { text: response, bold: true, color: statusColor(status) })
  if (ex.replayOf !== undefined) out.push({ text: `replay of ${ex.replayOf}`, color: 'blue' })
  if (ex.verdict !== undefined) {
    out.push({ text: `policy: ${ex.verdict.action}${ex.verdict.rule ? ` (rule ${ex.verdict.rule})` : ''} answered ${ex.verdict.status}`, color: 'magenta' })
  }
  if (ex.error !== undefined) out.push({ text: `error: ${ex.error.code}: ${ex.error.message}`, color: 'red' })
  if (ex.websocket !== undefined) out.push({ text: `WebSocket: ${ex.websocket.messagesIn} messages in, ${ex.websocket.messagesOut} out`, color: 'blue' })
  const t = timingSplit(ex)
  out.push({
    text: `timing: relay→agent ${formatDuration(t.relayToAgentMs)} · agent→upstream ${formatDuration(t.agentToUpstreamMs)} · upstream ${formatDuration(t.upstreamMs)}`,
    dim: true,
  })
  out.push({ text: `        transfer ${formatDuration(t.transferMs)} · total ${formatDuration(t.totalMs)}`, dim: true })
  out.push({ text: `from ${ex.request.remoteAddress}:${ex.request.remotePort} over ${ex.request.scheme} · tunnel ${ex.tunnel} · id ${ex.id}`, dim: true })
  out.push({ text: '── Request headers', bold: true })
  out.push(...headerLines(ex.request.rawHeaders))
  out.push(...bodyLines('Request body', record.requestBody, ex.request.rawHeaders))
  if (ex.response !== undefined) {
    out.push({ text: '── Response headers', bold: true })
    out.push(...headerLines(ex.response.rawHeaders))
    if (status !== 101) out.push(...bodyLines('Response body', record.responseBody, ex.response.rawHeaders))
  }
  return out
}
