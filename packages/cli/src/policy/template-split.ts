/**
 * Splitting a config string into its literal text and its `${…}` parts. The closing
 * brace is found by scanning the CEL text and skipping string literals, so
 * `${req.headers['x-}'][0]}` is one part. Both the request-time templates (cel.ts) and
 * the values resolved when the policy loads (secrets.ts) split with this one scanner.
 */

export type TemplatePart = string | { readonly source: string; readonly offset: number }

/** Thrown for a `${` without its `}`; `offset` is where the `${` starts. */
export class UnclosedInterpolationError extends Error {
  readonly offset: number
  constructor(offset: number) {
    super('an interpolation `${` is not closed with `}`')
    this.offset = offset
  }
}

export function splitTemplate(text: string): TemplatePart[] {
  const parts: TemplatePart[] = []
  let i = 0
  let literal = ''
  while (i < text.length) {
    if (text[i] === '$' && text[i + 1] === '{') {
      const start = i + 2
      let depth = 1
      let j = start
      let quote: string | undefined
      for (; j < text.length; j++) {
        const c = text[j]!
        if (quote) {
          if (c === '\\') j++
          else if (c === quote) quote = undefined
        } else if (c === '"' || c === "'") quote = c
        else if (c === '{') depth++
        else if (c === '}' && --depth === 0) break
      }
      if (j >= text.length) throw new UnclosedInterpolationError(i)
      if (literal) parts.push(literal)
      literal = ''
      parts.push({ source: text.slice(start, j), offset: start })
      i = j + 1
    } else {
      literal += text[i]
      i++
    }
  }
  if (literal) parts.push(literal)
  return parts
}
