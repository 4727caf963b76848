/**
 * Terminal text with SGR colour codes (as `tmux capture-pane -e` gives it) to HTML, so
 * a real terminal capture can be rendered to a PNG for the docs.
 */
const BASIC = ['#1d1f21', '#cc342b', '#198844', '#c5a332', '#3971ed', '#a36ac7', '#3971ed', '#c5c8c6']
const BRIGHT = ['#969896', '#ff5f5f', '#5fd75f', '#ffd75f', '#5fafff', '#d787ff', '#5fd7ff', '#ffffff']

function xterm256(n: number): string {
  if (n < 8) return BASIC[n]!
  if (n < 16) return BRIGHT[n - 8]!
  if (n < 232) {
    const c = n - 16
    const v = (x: number) => (x === 0 ? 0 : 55 + x * 40)
    return `rgb(${v(Math.floor(c / 36))},${v(Math.floor(c / 6) % 6)},${v(c % 6)})`
  }
  const g = 8 + (n - 232) * 10
  return `rgb(${g},${g},${g})`
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function ansiToHtml(text: string, options: { fg?: string; bg?: string; title?: string } = {}): string {
  const fgDefault = options.fg ?? '#e5e7eb'
  const bgDefault = options.bg ?? '#16181d'
  let fg: string | undefined
  let bg: string | undefined
  let bold = false
  let dim = false
  let inverse = false
  let html = ''
  // eslint-disable-next-line no-control-regex
  const parts = text.split(/(\x1b\[[0-9;]*m)/)
  for (const part of parts) {
    const m = /^\x1b\[([0-9;]*)m$/.exec(part)
    if (m === null) {
      if (part === '') continue
      const f = inverse ? (bg ?? bgDefault) : fg
      const b = inverse ? (fg ?? fgDefault) : bg
      const style = [f ? `color:${f}` : '', b ? `background:${b}` : '', bold ? 'font-weight:bold' : '', dim ? 'opacity:.6' : ''].filter(Boolean).join(';')
      html += style ? `<span style="${style}">${escapeHtml(part)}</span>` : escapeHtml(part)
      continue
    }
    const codes = (m[1] === '' ? '0' : m[1]!).split(';').map(Number)
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i]!
      if (c === 0) [fg, bg, bold, dim, inverse] = [undefined, undefined, false, false, false]
      else if (c === 1) bold = true
      else if (c === 2) dim = true
      else if (c === 22) [bold, dim] = [false, false]
      else if (c === 7) inverse = true
      else if (c === 27) inverse = false
      else if (c >= 30 && c <= 37) fg = BASIC[c - 30]
      else if (c >= 90 && c <= 97) fg = BRIGHT[c - 90]
      else if (c === 39) fg = undefined
      else if (c >= 40 && c <= 47) bg = BASIC[c - 40]
      else if (c >= 100 && c <= 107) bg = BRIGHT[c - 100]
      else if (c === 49) bg = undefined
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
        const colour = xterm256(codes[i + 2]!)
        if (c === 38) fg = colour
        else bg = colour
        i += 2
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
        const colour = `rgb(${codes[i + 2]},${codes[i + 3]},${codes[i + 4]})`
        if (c === 38) fg = colour
        else bg = colour
        i += 4
      }
    }
  }
  return `<!doctype html><meta charset="utf-8"><title>${escapeHtml(options.title ?? 'terminal')}</title>
<style>body{margin:0;background:${bgDefault}}pre{margin:0;padding:14px 16px;display:inline-block;color:${fgDefault};background:${bgDefault};font:14px/1.35 "DejaVu Sans Mono",ui-monospace,monospace}</style>
<pre id="screen">${html}</pre>`
}
