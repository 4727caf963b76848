/**
 * Regular expressions with RE2 semantics, as ngrok's `matches()` has (its CEL is cel-go,
 * whose `matches` is Go's regexp, i.e. RE2 syntax). RE2 matches in time linear in the
 * input, so a pattern a policy author writes (or one built from a request value) cannot
 * backtrack catastrophically the way `(a+)+$` does under JavaScript's RegExp. The engine
 * is re2js, a pure-JavaScript port of RE2/J, so no native build is needed.
 *
 * RE2 syntax also differs from JavaScript's: `(?i)` flags work, lookarounds and
 * backreferences are refused. A pattern written in the policy is compiled when the policy
 * loads, so a bad one is a load error rather than every request not matching.
 */
import { RE2JS } from 're2js'

/** Compiled patterns by source; patterns built at run time are bounded by this cap. */
const CACHE_LIMIT = 256
const cache = new Map<string, RE2JS>()

/** Why a pattern does not compile under RE2, in RE2's words. */
export class Re2SyntaxError extends Error {}

export function compileRe2(pattern: string): RE2JS {
  const hit = cache.get(pattern)
  if (hit) return hit
  let re: RE2JS
  try {
    re = RE2JS.compile(pattern)
  } catch (err) {
    throw new Re2SyntaxError(`${(err as Error).message} (patterns are RE2 syntax, as in ngrok)`)
  }
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!)
  cache.set(pattern, re)
  return re
}

/** CEL's `s.matches(p)`: true when the pattern matches any part of `s`. */
export function re2Matches(text: string, pattern: string): boolean {
  return compileRe2(pattern).test(text)
}
