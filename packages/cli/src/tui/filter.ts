/**
 * The `/` filter of the TUI: words separated by spaces, all of which must match.
 * A word is a method (`post`), a status (`404`) or status class (`4xx`, `5`), or else a
 * piece of the path (`/api`, `users`). `!word` excludes. Case does not matter.
 *
 * @example
 * matchesFilter(record, parseFilter('post /hooks 2xx'))
 */
import type { CaptureRecord } from '../inspect/capture.js'

const METHODS = new Set(['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'connect', 'trace'])

export interface FilterTerm {
  kind: 'method' | 'status' | 'class' | 'path'
  value: string
  negate: boolean
}

export function parseFilter(text: string): FilterTerm[] {
  const terms: FilterTerm[] = []
  for (let word of text.trim().toLowerCase().split(/\s+/)) {
    if (word === '' || word === '!') continue
    const negate = word.startsWith('!')
    if (negate) word = word.slice(1)
    if (METHODS.has(word)) terms.push({ kind: 'method', value: word.toUpperCase(), negate })
    else if (/^[1-5]\d\d$/.test(word)) terms.push({ kind: 'status', value: word, negate })
    else if (/^[1-5](xx)?$/.test(word)) terms.push({ kind: 'class', value: word[0]!, negate })
    else terms.push({ kind: 'path', value: word, negate })
  }
  return terms
}

function matchesTerm(record: CaptureRecord, term: FilterTerm): boolean {
  const ex = record.exchange
  const status = ex.response?.status ?? ex.verdict?.status
  switch (term.kind) {
    case 'method':
      return ex.request.method.toUpperCase() === term.value
    case 'status':
      return String(status ?? '') === term.value
    case 'class':
      return status !== undefined && String(status)[0] === term.value
    case 'path':
      return ex.request.target.toLowerCase().includes(term.value)
  }
}

export function matchesFilter(record: CaptureRecord, terms: FilterTerm[]): boolean {
  for (const term of terms) if (matchesTerm(record, term) === term.negate) return false
  return true
}
