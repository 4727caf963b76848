/**
 * A body as a person wants to read it: JSON and XML indented, text as is, anything else
 * as a hex dump, and always saying when the capture cut it short. Compressed bodies are
 * inflated for the preview (bounded, so a zip bomb costs at most `maxInflated`).
 */
import { brotliDecompressSync, gunzipSync, inflateSync, inflateRawSync } from 'node:zlib'
import type { CapturedBody } from './capture.js'

export type PreviewKind = 'empty' | 'json' | 'xml' | 'text' | 'binary'

export interface BodyPreview {
  kind: PreviewKind
  lines: string[]
  /** e.g. `64 KiB of 1.2 MiB captured`, or undefined when whole. */
  note: string | undefined
  /** The content-coding that was undone for the preview, if any. */
  decoded: string | undefined
}

export interface PreviewOptions {
  contentType?: string | undefined
  contentEncoding?: string | undefined
  /** Lines past this are cut (the TUI shows a screenful). */
  maxLines?: number
  maxInflated?: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function decode(bytes: Buffer, encoding: string | undefined, maxInflated: number): { bytes: Buffer; decoded: string | undefined } {
  const coding = encoding?.trim().toLowerCase()
  if (coding === undefined || coding === '' || coding === 'identity') return { bytes, decoded: undefined }
  const opts = { maxOutputLength: maxInflated }
  try {
    if (coding === 'gzip' || coding === 'x-gzip') return { bytes: gunzipSync(bytes, opts), decoded: coding }
    if (coding === 'br') return { bytes: brotliDecompressSync(bytes, opts), decoded: coding }
    if (coding === 'deflate') {
      try {
        return { bytes: inflateSync(bytes, opts), decoded: coding }
      } catch {
        return { bytes: inflateRawSync(bytes, opts), decoded: coding } // servers that skip the zlib header
      }
    }
  } catch {
    // A truncated or corrupt stream: show the compressed bytes as they are.
  }
  return { bytes, decoded: undefined }
}

function decodeUtf8(bytes: Buffer): string | undefined {
  // A capture cut in the middle of a multi-byte character is still text: allow up to
  // three bytes of an incomplete sequence at the end.
  for (let cut = 0; cut <= 3 && cut < bytes.length; cut++) {
    try {
      return utf8.decode(bytes.subarray(0, bytes.length - cut))
    } catch {
      /* try a shorter cut */
    }
  }
  return undefined
}

function asText(bytes: Buffer): string | undefined {
  const text = decodeUtf8(bytes)
  if (text === undefined) return undefined
  // Text has few control characters besides tab, CR and LF.
  let control = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if ((c < 32 && c !== 9 && c !== 10 && c !== 13) || c === 127) control++
  }
  return control > text.length / 100 + 1 ? undefined : text
}

export function hexDump(bytes: Buffer, maxLines = Infinity): string[] {
  const lines: string[] = []
  for (let off = 0; off < bytes.length && lines.length < maxLines; off += 16) {
    const row = bytes.subarray(off, off + 16)
    let hex = ''
    let ascii = ''
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += row[i]!.toString(16).padStart(2, '0') + (i === 7 ? '  ' : ' ')
        ascii += row[i]! >= 32 && row[i]! < 127 ? String.fromCharCode(row[i]!) : '.'
      } else hex += i === 7 ? '    ' : '   '
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} ${ascii}`)
  }
  return lines
}

/** Indents XML by tag depth; mixed content and comments stay on their own lines. */
export function prettyXml(text: string): string[] {
  const tokens = text.replace(/>\s+</g, '><').split(/(<[^>]+>)/).filter((t) => t.trim() !== '')
  const lines: string[] = []
  let depth = 0
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    if (t.startsWith('</')) {
      depth = Math.max(0, depth - 1)
      lines.push('  '.repeat(depth) + t)
    } else if (t.startsWith('<?') || t.startsWith('<!') || t.endsWith('/>')) {
      lines.push('  '.repeat(depth) + t)
    } else if (t.startsWith('<')) {
      // <a>text</a> stays on one line.
      const text = tokens[i + 1]
      const close = tokens[i + 2]
      if (text !== undefined && !text.startsWith('<') && close?.startsWith('</')) {
        lines.push('  '.repeat(depth) + t + text.trim() + close)
        i += 2
      } else {
        lines.push('  '.repeat(depth) + t)
        depth++
      }
    } else lines.push('  '.repeat(depth) + t.trim())
  }
  return lines
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase()
}

export function previewBody(body: CapturedBody, options: PreviewOptions = {}): BodyPreview {
  const maxLines = options.maxLines ?? Infinity
  const note = body.truncated ? `${body.bytes.length} of ${body.size} bytes captured (--inspect-body-limit)` : undefined
  if (body.size === 0) return { kind: 'empty', lines: [], note, decoded: undefined }
  const { bytes, decoded } = decode(body.bytes, options.contentEncoding, options.maxInflated ?? 1024 * 1024)
  const type = mediaType(options.contentType)
  const text = asText(bytes)
  let kind: PreviewKind = 'binary'
  let lines: string[]
  if (text === undefined) {
    lines = hexDump(bytes, maxLines)
  } else if (type === 'application/json' || type.endsWith('+json') || /^\s*[[{]/.test(text)) {
    try {
      lines = JSON.stringify(JSON.parse(text), null, 2).split('\n')
      kind = 'json'
    } catch {
      lines = text.split(/\r?\n/)
      kind = 'text'
    }
  } else if (type.endsWith('/xml') || type.endsWith('+xml') || /^\s*<\?xml/.test(text)) {
    lines = prettyXml(text)
    kind = 'xml'
  } else {
    lines = text.split(/\r?\n/)
    kind = 'text'
  }
  if (lines.length > maxLines) lines = lines.slice(0, maxLines)
  return { kind, lines, note, decoded }
}
