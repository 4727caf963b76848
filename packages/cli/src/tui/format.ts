/**
 * Text for the TUI's rows and header, cut to exact widths so that one record is always
 * one terminal line: the screen must fit 80×24 whatever the paths look like.
 */
import type { CaptureRecord } from '../inspect/capture.js'
import { pathOf } from '../inspect/http-text.js'
import { formatBytes, formatDuration, timingSplit } from '../inspect/timing.js'

/** Cuts to `width` code points, marking the cut with `…`; pads to `width` when `pad`. */
export function fit(text: string, width: number, pad = true): string {
  if (width <= 0) return ''
  const chars = [...text.replace(/[\x00-\x1f\x7f]/g, '?')]
  if (chars.length > width) return chars.slice(0, width - 1).join('') + '…'
  return pad ? chars.join('') + ' '.repeat(width - chars.length) : chars.join('')
}

export type StatusColor = 'green' | 'cyan' | 'yellow' | 'red' | 'gray' | 'magenta'

export function statusColor(status: number | undefined): StatusColor {
  if (status === undefined) return 'gray'
  if (status >= 500) return 'red'
  if (status >= 400) return 'yellow'
  if (status >= 300) return 'cyan'
  if (status >= 200) return 'green'
  return 'magenta' // 1xx: a WebSocket upgrade
}

export function clock(ms: number): string {
  const d = new Date(ms)
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')
}

export interface RowText {
  time: string
  method: string
  path: string
  status: string
  statusColor: StatusColor
  duration: string
  size: string
  /** Policy verdict, replay mark, error code or WebSocket counts. */
  note: string
  noteColor: 'magenta' | 'red' | 'blue' | 'gray'
}

/** Column widths for a terminal `columns` wide; the path takes what is left. */
export function rowWidths(columns: number): { time: number; method: number; path: number; status: number; duration: number; size: number; note: number } {
  const time = 8
  const method = 7
  const status = 3
  const duration = 7
  const size = 6
  const note = columns >= 100 ? 22 : columns >= 70 ? 16 : 0
  // 6 single spaces between 7 columns, and one column spare so a line never wraps.
  const path = Math.max(8, columns - (time + method + status + duration + size + note) - 7)
  return { time, method, path, status, duration, size, note }
}

export function rowText(record: CaptureRecord): RowText {
  const ex = record.exchange
  const status = ex.response?.status ?? ex.verdict?.status
  let note = ''
  let noteColor: RowText['noteColor'] = 'gray'
  if (ex.verdict !== undefined) {
    note = `${ex.verdict.action}${ex.verdict.rule ? ` ${ex.verdict.rule}` : ''}`
    noteColor = 'magenta'
  } else if (ex.error !== undefined) {
    note = ex.error.code.replace(/^GW_ERR_/, '')
    noteColor = 'red'
  } else if (ex.websocket !== undefined) {
    note = `ws ↓${ex.websocket.messagesIn} ↑${ex.websocket.messagesOut}`
    noteColor = 'blue'
  }
  if (ex.replayOf !== undefined) {
    if (note === '') noteColor = 'blue'
    note = note === '' ? 'replay' : `replay ${note}`
  }
  return {
    time: clock(ex.timing.agentReceivedAt),
    method: ex.request.method,
    path: pathOf(ex.request.target),
    status: status === undefined ? (record.state === 'open' ? '…' : 'ERR') : String(status),
    statusColor: ex.error !== undefined && status === undefined ? 'red' : statusColor(status),
    duration: record.state === 'open' ? 'open' : formatDuration(timingSplit(ex).totalMs),
    size: formatBytes(record.responseBody.size),
    note,
    noteColor,
  }
}

/** `0.01` like ngrok's console: seconds with two decimals, from nanoseconds. */
export function seconds(ns: number): string {
  return (ns / 1e9).toFixed(2)
}

export function rate(perSecond: number): string {
  return perSecond.toFixed(2)
}
