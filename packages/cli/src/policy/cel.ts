/**
 * CEL for policy expressions, on @marcbachmann/cel-js (see the commit that added it for
 * why that one). One shared environment declares ngrok's variables as typed messages, so
 * a typo such as `req.metod` fails validation instead of every request, and registers
 * ngrok's macros. Expressions are parsed and type-checked once, at compile time; at
 * request time evaluation is a call to a prebuilt closure.
 *
 * Macros such as `hasReqHeader('x')` need the current request, but CEL functions only
 * get their arguments. Evaluation is synchronous, so the request being evaluated sits in
 * a module slot for the duration of the call.
 */
import { Environment } from '@marcbachmann/cel-js'
import { cachedCidrSet, isPrivateIp } from './cidr.js'
import { ConnVars, EndpointVars, EvalRoot, RequestVars, ResponseVars, TimeVars, UrlVars } from './variables.js'

let current: EvalRoot | undefined

function currentRoot(): EvalRoot {
  if (!current) throw new Error('a request macro was called outside a request')
  return current
}

function inCidrRange(ip: string, cidr: string): boolean {
  return cachedCidrSet(cidr)?.has(ip) ?? false
}

const env = new Environment({ homogeneousAggregateLiterals: false })
  .registerType('gw.Url', {
    ctor: UrlVars,
    fields: {
      scheme: 'string', host: 'string', port: 'int', path: 'string', raw_path: 'string', query: 'string',
      query_params: 'map<string, list<string>>', raw: 'string', authority: 'string',
    },
  })
  .registerType('gw.Request', {
    ctor: RequestVars,
    fields: {
      method: 'string', host: 'string', version: 'string', url: 'gw.Url', headers: 'map<string, list<string>>',
      cookies: 'map<string, list<string>>', content_type: 'string', content_length: 'int', user_agent: 'string',
    },
  })
  .registerType('gw.Conn', { ctor: ConnVars, fields: { client_ip: 'string', client_port: 'int' } })
  .registerType('gw.Response', { ctor: ResponseVars, fields: { status_code: 'int', headers: 'map<string, list<string>>' } })
  .registerType('gw.Time', { ctor: TimeVars, fields: { now: 'google.protobuf.Timestamp' } })
  .registerType('gw.Endpoint', { ctor: EndpointVars, fields: { id: 'string', name: 'string', scheme: 'string', host: 'string', url: 'string' } })
  .registerVariable('req', 'gw.Request')
  .registerVariable('conn', 'gw.Conn')
  .registerVariable('res', 'gw.Response')
  .registerVariable('time', 'gw.Time')
  .registerVariable('endpoint', 'gw.Endpoint')
  .registerVariable('actions', 'map<string, dyn>')
  .registerVariable('vars', 'map<string, dyn>')
  .registerFunction('inCidrRange(string, string): bool', inCidrRange)
  .registerFunction('inCidrRanges(string, list<string>): bool', (ip: string, cidrs: string[]) =>
    cidrs.some((c) => inCidrRange(ip, c)))
  .registerFunction('string.isPrivateIp(): bool', (ip: string) => isPrivateIp(ip))
  .registerFunction('hasReqHeader(string): bool', (name: string) => currentRoot().req.headers[name.toLowerCase()] !== undefined)
  .registerFunction('getReqHeader(string): list<string>', (name: string) => currentRoot().req.headers[name.toLowerCase()] ?? [])
  .registerFunction('hasResHeader(string): bool', (name: string) => currentRoot().res.headers[name.toLowerCase()] !== undefined)
  .registerFunction('getResHeader(string): list<string>', (name: string) => currentRoot().res.headers[name.toLowerCase()] ?? [])
  .registerFunction('getQueryParam(string): list<string>', (name: string) => currentRoot().req.url.query_params[name] ?? [])
  .registerFunction('getReqCookie(string): string', (name: string) => currentRoot().req.cookies[name]?.[0] ?? '')

export type CompiledExpression = (root: EvalRoot) => unknown

const URL_FIELDS = ['scheme', 'host', 'port', 'path', 'raw_path', 'query', 'query_params', 'raw', 'authority']
const FIELDS: Record<string, string[]> = {
  req: ['method', 'host', 'version', 'url', 'headers', 'cookies', 'content_type', 'content_length', 'user_agent'],
  'req.url': URL_FIELDS,
  conn: ['client_ip', 'client_port'],
  res: ['status_code', 'headers'],
  time: ['now'],
  endpoint: ['id', 'name', 'scheme', 'host', 'url'],
}
export const VARIABLES = ['req', 'conn', 'res', 'time', 'endpoint', 'actions', 'vars']

/** Why an expression does not compile, with the offset of the problem in the expression. */
export class ExpressionError extends Error {
  readonly offset: number
  /** The names that would have been valid, when the problem is an unknown name. */
  readonly allowed: readonly string[] | undefined
  constructor(message: string, offset: number, allowed?: readonly string[]) {
    super(message)
    this.offset = offset
    this.allowed = allowed
  }
}

/** For "No such key" and "Unknown variable", the names that exist there. */
function allowedNames(source: string, message: string, offset: number): readonly string[] | undefined {
  if (message.startsWith('Unknown variable')) return VARIABLES
  if (!message.startsWith('No such key')) return undefined
  const chain = /([A-Za-z_][\w.]*)\.\s*$/.exec(source.slice(0, offset))?.[1]
  return chain ? FIELDS[chain] : undefined
}

/**
 * Parse and type-check once. `expectBool` is for rule expressions, which must be
 * boolean; interpolations and bucket keys may be of any type.
 */
export function compileExpression(source: string, expectBool: boolean): CompiledExpression {
  const checked = env.check(source)
  if (!checked.valid) {
    const err = checked.error as { summary?: string; message: string; range?: { start: number } }
    const message = err.summary ?? err.message.split('\n')[0]!
    const offset = err.range?.start ?? 0
    throw new ExpressionError(message, offset, allowedNames(source, message, offset))
  }
  if (expectBool && checked.type !== 'bool' && checked.type !== 'dyn') {
    throw new ExpressionError(`must be a boolean expression, but its type is ${checked.type}`, 0)
  }
  const fn = env.parse(source) as unknown as (ctx: unknown) => unknown
  return function evaluateExpression(root: EvalRoot): unknown {
    const previous = current
    current = root
    try {
      return fn(root)
    } finally {
      current = previous
    }
  }
}

/** A rule expression: an evaluation error counts as no match (ngrok does the same). */
export function evaluatesTrue(expr: CompiledExpression, root: EvalRoot): boolean {
  try {
    return expr(root) === true
  } catch {
    return false
  }
}

/** How an expression value reads inside a string (`${…}` interpolation, bucket keys). */
export function celToString(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === undefined || value === null) return ''
  if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value instanceof Date) return value.toISOString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8')
  // `${req.url}` is the URL string (ngrok's req.url), its parts beside it.
  if (value instanceof UrlVars) return value.raw
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v instanceof Map ? Object.fromEntries(v) : v))
}

/** A string config value with `${…}` parts, compiled once. */
export type Template = (root: EvalRoot) => string

/**
 * A config value whose whole text is one `${…}`: its value keeps its CEL type (a list
 * stays a list), as ngrok's set-vars does. Returns undefined for any other text.
 */
export function compileWholeExpression(text: string): CompiledExpression | undefined {
  const m = /^\$\{([\s\S]*)\}$/.exec(text)
  if (!m || m[1]!.includes('${')) return undefined
  try {
    // Only if the braces enclose exactly one expression (not "${a} and ${b}").
    compileTemplate(text)
  } catch {
    return undefined
  }
  const inner = m[1]!
  let depth = 0
  let quote: string | undefined
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!
    if (quote) {
      if (c === '\\') i++
      else if (c === quote) quote = undefined
    } else if (c === '"' || c === "'") quote = c
    else if (c === '{') depth++
    else if (c === '}' && --depth < 0) return undefined
  }
  return compileExpression(inner, false)
}

/**
 * Compile `${…}` interpolation. The closing brace is found by scanning the CEL text and
 * skipping string literals, so `${req.headers['x-}'][0]}` works. Strings without `${`
 * return a constant function.
 */
export function compileTemplate(text: string): Template {
  if (!text.includes('${')) return () => text
  const parts: Array<string | CompiledExpression> = []
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
      if (j >= text.length) throw new ExpressionError('an interpolation `${` is not closed with `}`', i)
      const source = text.slice(start, j)
      try {
        parts.push(compileExpression(source, false))
      } catch (err) {
        if (err instanceof ExpressionError) throw new ExpressionError(`in \${${source}}: ${err.message}`, start + err.offset, err.allowed)
        throw err
      }
      if (literal) parts.splice(parts.length - 1, 0, literal)
      literal = ''
      i = j + 1
    } else {
      literal += text[i]
      i++
    }
  }
  if (literal) parts.push(literal)
  return function interpolate(root: EvalRoot): string {
    let out = ''
    for (const p of parts) {
      if (typeof p === 'string') out += p
      else {
        try {
          out += celToString(p(root))
        } catch {
          // A missing value interpolates as empty, as a missing header does.
        }
      }
    }
    return out
  }
}
