/**
 * The short page a public client gets when gw (not the upstream) answers: HTML for
 * browsers, JSON for clients that accept JSON. The stable code goes in `gw-error-code`,
 * a header the relay strips from upstream responses so an upstream cannot forge one.
 */
import { ErrorCodes, type ErrorCode } from './errors.js'

export const ERROR_CODE_HEADER = 'gw-error-code'

export interface ErrorPage {
  status: number
  headers: Record<string, string>
  body: Buffer
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => escapes[c]!)

function wantsJson(accept: string | undefined): boolean {
  if (!accept) return false
  // A browser's Accept lists text/html first; an API client asks for JSON.
  const html = accept.indexOf('text/html')
  const json = accept.search(/application\/([\w.+-]*\+)?json/)
  return json !== -1 && (html === -1 || json < html)
}

export function renderErrorPage(code: ErrorCode, detail: string, accept?: string, status?: number): ErrorPage {
  return renderCodedErrorPage(code, status ?? ErrorCodes[code].status, ErrorCodes[code].message, detail, accept)
}

/**
 * The same page for a code from another package's table (the agent's and the policy
 * engine's codes, which the agent renders itself and names in the response head).
 */
export function renderCodedErrorPage(code: string, finalStatus: number, title: string, detail: string, accept?: string): ErrorPage {
  if (wantsJson(accept)) {
    const body = Buffer.from(JSON.stringify({ error: { code, status: finalStatus, message: title, detail } }) + '\n')
    return {
      status: finalStatus,
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(body.length),
        'cache-control': 'no-store',
        [ERROR_CODE_HEADER]: code,
      },
      body,
    }
  }
  const body = Buffer.from(
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${finalStatus} ${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}
code{background:#f3f3f3;padding:.1em .3em;border-radius:3px}</style></head>
<body><h1>${finalStatus}: ${escapeHtml(title)}</h1>
<p>${escapeHtml(detail)}</p>
<p><small>gw error <code>${code}</code></small></p></body></html>
`,
  )
  return {
    status: finalStatus,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(body.length),
      'cache-control': 'no-store',
      [ERROR_CODE_HEADER]: code,
    },
    body,
  }
}
