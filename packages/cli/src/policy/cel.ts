/**
 * CEL for policy expressions, on @marcbachmann/cel-js (see the commit that added it for
 * why that one). One shared environment declares ngrok's variables as typed messages, so
 * a typo such as `req.metod` fails validation instead of every request, and registers
 * ngrok's macros. Expressions are parsed and type-checked once, at compile time; at
 * request time evaluation is a call to a prebuilt closure.
 *
 * Before checking, an expression's source is rewritten (cel-rewrite.ts) so that ngrok's
 * string-with-fields values (`req.url`, `req.user_agent`…) and RE2 `matches()` work.
 *
 * Macros such as `hasReqHeader('x')` need the current request, but CEL functions only
 * get their arguments. Evaluation is synchronous, so the request being evaluated sits in
 * a module slot for the duration of the call.
 */
import { Environment } from '@marcbachmann/cel-js'
import { cachedCidrSet, isPrivateIp } from './cidr.js'
import { MATCHES_ALIAS, originalMessage, rewriteExpression, STRING_FIELD, type StringLike } from './cel-rewrite.js'
import { compileRe2, re2Matches, Re2SyntaxError } from './re2.js'
import { activeSecretStore, missingSecret, NO_SECRETS, type SecretStore } from './secrets.js'
import { splitTemplate, UnclosedInterpolationError } from './template-split.js'
import { UserAgentVars } from './user-agent.js'
import * as M from './macros.js'
import {
  CertExtensionVars, CertNameVars, CertSanVars, CertValidityVars, TlsClientVars,
  ConnTlsVars, ConnTsVars, ConnVars, ContentTypeVars, CookieVars, EndpointVars, EvalRoot, RandVars, RequestTsVars, RequestVars,
  ResponseVars, SecretsVars, TimeVars, UrlVars,
} from './variables.js'

let current: EvalRoot | undefined
/** The vault of the policy the expression being evaluated belongs to. */
let currentSecrets: SecretStore = NO_SECRETS

function getSecret(_s: SecretsVars, vault: string, name: string): string {
  const v = currentSecrets.get(vault, name)
  if (v === undefined) throw new Error(missingSecret(vault, name))
  return v
}

function currentRoot(): EvalRoot {
  if (!current) throw new Error('a request macro was called outside a request')
  return current
}

function inCidrRange(ip: string, cidr: string): boolean {
  return cachedCidrSet(cidr)?.has(ip) ?? false
}

/** ngrok's `rand.int(min, max)`: a whole number in [min, max]. */
function randInt(min: bigint, max: bigint): bigint {
  if (max < min) throw new Error(`rand.int: max (${max}) is below min (${min})`)
  const span = Number(max - min) + 1
  return min + BigInt(Math.floor(Math.random() * span))
}

const URL_FIELDS = ['scheme', 'host', 'port', 'path', 'raw_path', 'query', 'query_params', 'raw', 'authority', 'uri', 'user_password']
const USER_AGENT_FIELDS = ['name', 'version', 'os', 'os_version', 'device', 'is_mobile', 'is_tablet', 'is_desktop', 'is_bot', 'url']
const CONTENT_TYPE_FIELDS = ['raw', 'parameters']
const CERT_NAME_FIELDS = ['common_name', 'country', 'locality', 'organization', 'organizational_unit', 'postal_code', 'province', 'street_address']

/** The values that are a string and have fields beside it (cel-rewrite.ts). */
const STRING_LIKES: readonly StringLike[] = [
  { path: 'req.url' },
  { path: 'req.user_agent' },
  { path: 'req.content_type' },
  { path: 'conn.tls.client.subject' },
  { path: 'conn.tls.client.issuer' },
  { path: 'conn.tls.client.san' },
  { call: 'getReqCookie', asString: 'value' },
]

const env = new Environment({ homogeneousAggregateLiterals: false })
  .registerType('gw.Url', {
    ctor: UrlVars,
    fields: {
      scheme: 'string', host: 'string', port: 'int', path: 'string', raw_path: 'string', query: 'string',
      query_params: 'map<string, list<string>>', raw: 'string', authority: 'string', uri: 'string', user_password: 'string',
      [STRING_FIELD]: 'string',
    },
  })
  .registerType('gw.UserAgent', {
    ctor: UserAgentVars,
    fields: {
      name: 'string', version: 'string', os: 'string', os_version: 'string', device: 'string', is_mobile: 'bool',
      is_tablet: 'bool', is_desktop: 'bool', is_bot: 'bool', url: 'string', [STRING_FIELD]: 'string',
    },
  })
  .registerType('gw.ContentType', { ctor: ContentTypeVars, fields: { raw: 'string', parameters: 'map<string, string>', [STRING_FIELD]: 'string' } })
  .registerType('gw.Cookie', { ctor: CookieVars, fields: { name: 'string', value: 'string' } })
  .registerType('gw.RequestTs', { ctor: RequestTsVars, fields: { header_received: 'google.protobuf.Timestamp' } })
  .registerType('gw.ConnTs', { ctor: ConnTsVars, fields: { start: 'google.protobuf.Timestamp' } })
  .registerType('gw.Request', {
    ctor: RequestVars,
    fields: {
      method: 'string', host: 'string', version: 'string', url: 'gw.Url', headers: 'map<string, list<string>>',
      cookies: 'map<string, list<gw.Cookie>>', content_type: 'gw.ContentType', content_encoding: 'list<string>',
      content_length: 'int', user_agent: 'gw.UserAgent', ts: 'gw.RequestTs',
    },
  })
  .registerType('gw.CertName', {
    ctor: CertNameVars,
    fields: {
      common_name: 'string', country: 'list<string>', locality: 'list<string>', organization: 'list<string>', organizational_unit: 'list<string>',
      postal_code: 'list<string>', province: 'list<string>', street_address: 'list<string>', [STRING_FIELD]: 'string',
    },
  })
  .registerType('gw.CertSan', { ctor: CertSanVars, fields: { dns_names: 'list<string>', email_addresses: 'list<string>', ip_addresses: 'list<string>', uris: 'list<string>', [STRING_FIELD]: 'string' } })
  .registerType('gw.CertValidity', { ctor: CertValidityVars, fields: { not_before: 'google.protobuf.Timestamp', not_after: 'google.protobuf.Timestamp' } })
  .registerType('gw.CertExtension', { ctor: CertExtensionVars, fields: { id: 'string', critical: 'bool', value: 'bytes' } })
  .registerType('gw.TlsClient', {
    ctor: TlsClientVars,
    fields: {
      extensions: 'list<gw.CertExtension>', issuer: 'gw.CertName', pem: 'string', san: 'gw.CertSan', serial_number: 'string',
      signature_algorithm: 'string', subject: 'gw.CertName', validity: 'gw.CertValidity',
    },
  })
  .registerType('gw.ConnTls', { ctor: ConnTlsVars, fields: { version: 'string', cipher_suite: 'string', sni: 'string', negotiated_alpn: 'string', session_resumed: 'bool', client: 'gw.TlsClient' } })
  .registerType('gw.Conn', { ctor: ConnVars, fields: { client_ip: 'string', client_port: 'int', ts: 'gw.ConnTs', tls: 'gw.ConnTls' } })
  .registerType('gw.Response', { ctor: ResponseVars, fields: { status_code: 'int', headers: 'map<string, list<string>>', location: 'string' } })
  .registerType('gw.Time', { ctor: TimeVars, fields: { now: 'string' } })
  .registerType('gw.Endpoint', { ctor: EndpointVars, fields: { id: 'string', name: 'string', scheme: 'string', host: 'string', url: 'string' } })
  .registerType('gw.Rand', { ctor: RandVars, fields: {} })
  .registerType('gw.Secrets', { ctor: SecretsVars, fields: {} })
  .registerType('gw.Hash', { ctor: M.HashMacros, fields: {} })
  .registerType('gw.Base64', { ctor: M.Base64Macros, fields: {} })
  .registerType('gw.Json', { ctor: M.JsonMacros, fields: {} })
  .registerType('gw.UrlMacros', { ctor: M.UrlMacros, fields: {} })
  .registerType('gw.QueryString', { ctor: M.QueryStringMacros, fields: {} })
  .registerType('gw.BasicAuth', { ctor: M.BasicAuthMacros, fields: {} })
  .registerType('gw.Strings', { ctor: M.StringsMacros, fields: {} })
  .registerType('gw.Lists', { ctor: M.ListsMacros, fields: {} })
  .registerVariable('hash', 'gw.Hash')
  .registerVariable('base64', 'gw.Base64')
  .registerVariable('json', 'gw.Json')
  .registerVariable('url', 'gw.UrlMacros')
  .registerVariable('queryString', 'gw.QueryString')
  .registerVariable('basic_auth', 'gw.BasicAuth')
  .registerVariable('strings', 'gw.Strings')
  .registerVariable('lists', 'gw.Lists')
  .registerVariable('req', 'gw.Request')
  .registerVariable('conn', 'gw.Conn')
  .registerVariable('res', 'gw.Response')
  .registerVariable('time', 'gw.Time')
  .registerVariable('endpoint', 'gw.Endpoint')
  .registerVariable('rand', 'gw.Rand')
  .registerVariable('secrets', 'gw.Secrets')
  .registerVariable('actions', 'map<string, dyn>')
  .registerVariable('vars', 'map<string, dyn>')
  .registerFunction(`string.${MATCHES_ALIAS}(string): bool`, re2Matches)
  .registerFunction(`${MATCHES_ALIAS}(string, string): bool`, re2Matches)
  .registerFunction('gw.Secrets.get(string, string): string', getSecret)
  .registerFunction('gw.Rand.double(): double', () => Math.random())
  .registerFunction('gw.Rand.int(): int', () => randInt(0n, 1n))
  .registerFunction('gw.Rand.int(int, int): int', (_r: RandVars, min: bigint, max: bigint) => randInt(min, max))
  .registerFunction('inCidrRange(string, string): bool', inCidrRange)
  // ngrok's macro families (macros.ts), each as ngrok names it and in its string.…() form.
  .registerFunction('gw.Hash.md5(string): string', (_: unknown, s: string) => M.digest('md5', s))
  .registerFunction('gw.Hash.md5(string, string): string', (_: unknown, s: string, f: string) => M.digest('md5', s, f))
  .registerFunction('string.md5(): string', (s: string) => M.digest('md5', s))
  .registerFunction('string.md5(string): string', (s: string, f: string) => M.digest('md5', s, f))
  .registerFunction('gw.Hash.sha1(string): string', (_: unknown, s: string) => M.digest('sha1', s))
  .registerFunction('gw.Hash.sha1(string, string): string', (_: unknown, s: string, f: string) => M.digest('sha1', s, f))
  .registerFunction('string.sha1(): string', (s: string) => M.digest('sha1', s))
  .registerFunction('string.sha1(string): string', (s: string, f: string) => M.digest('sha1', s, f))
  .registerFunction('gw.Hash.sha256(string): string', (_: unknown, s: string) => M.digest('sha256', s))
  .registerFunction('gw.Hash.sha256(string, string): string', (_: unknown, s: string, f: string) => M.digest('sha256', s, f))
  .registerFunction('string.sha256(): string', (s: string) => M.digest('sha256', s))
  .registerFunction('string.sha256(string): string', (s: string, f: string) => M.digest('sha256', s, f))
  .registerFunction('gw.Hash.sha512(string): string', (_: unknown, s: string) => M.digest('sha512', s))
  .registerFunction('gw.Hash.sha512(string, string): string', (_: unknown, s: string, f: string) => M.digest('sha512', s, f))
  .registerFunction('string.sha512(): string', (s: string) => M.digest('sha512', s))
  .registerFunction('string.sha512(string): string', (s: string, f: string) => M.digest('sha512', s, f))
  .registerFunction('gw.Hash.crc32(string): string', (_: unknown, s: string) => M.crc32(s))
  .registerFunction('gw.Hash.crc32(string, string): string', (_: unknown, s: string, f: string) => M.crc32(s, f))
  .registerFunction('string.crc32(): string', (s: string) => M.crc32(s))
  .registerFunction('string.crc32(string): string', (s: string, f: string) => M.crc32(s, f))
  .registerFunction('gw.Hash.crc64(string): string', (_: unknown, s: string) => M.crc64(s))
  .registerFunction('gw.Hash.crc64(string, string): string', (_: unknown, s: string, f: string) => M.crc64(s, f))
  .registerFunction('string.crc64(): string', (s: string) => M.crc64(s))
  .registerFunction('string.crc64(string): string', (s: string, f: string) => M.crc64(s, f))
  .registerFunction('gw.Hash.xxhash64(string): string', (_: unknown, s: string) => M.xxhash64(s))
  .registerFunction('gw.Hash.xxhash64(string, string): string', (_: unknown, s: string, f: string) => M.xxhash64(s, f))
  .registerFunction('string.xxhash64(): string', (s: string) => M.xxhash64(s))
  .registerFunction('string.xxhash64(string): string', (s: string, f: string) => M.xxhash64(s, f))
  .registerFunction('gw.Json.decode(string): dyn', (_: unknown, s: string) => M.jsonDecode(s))
  .registerFunction('gw.Json.encode(dyn): string', (_: unknown, v: unknown) => M.jsonEncode(v))
  .registerFunction('string.decodeJson(): dyn', (s: string) => M.jsonDecode(s))
  .registerFunction('string.isJson(): bool', (s: string) => M.isJson(s))
  .registerFunction('list.encodeJson(): string', (v: unknown) => M.jsonEncode(v))
  .registerFunction('map.encodeJson(): string', (v: unknown) => M.jsonEncode(v))
  .registerFunction('gw.Base64.encode(bytes): string', (_: unknown, b: Uint8Array) => Buffer.from(b).toString('base64'))
  .registerFunction('gw.Base64.encode(string): string', (_: unknown, s: string) => Buffer.from(s, 'utf8').toString('base64'))
  .registerFunction('gw.Base64.decode(string): bytes', (_: unknown, s: string) => M.base64Decode(s))
  .registerFunction('string.encodeBase64(): string', (s: string) => Buffer.from(s, 'utf8').toString('base64'))
  .registerFunction('string.decodeBase64(): string', (s: string) => Buffer.from(M.base64Decode(s)).toString('utf8'))
  .registerFunction('gw.UrlMacros.escape(string): string', (_: unknown, s: string) => M.urlEscape(s))
  .registerFunction('gw.UrlMacros.unescape(string): string', (_: unknown, s: string) => M.urlUnescape(s))
  .registerFunction('gw.UrlMacros.parse(string): map<string, dyn>', (_: unknown, s: string) => M.urlParse(s))
  .registerFunction('string.escapeUrl(): string', (s: string) => M.urlEscape(s))
  .registerFunction('string.unescapeUrl(): string', (s: string) => M.urlUnescape(s))
  .registerFunction('string.parseUrl(): map<string, dyn>', (s: string) => M.urlParse(s))
  .registerFunction('string.isURL(): bool', (s: string) => M.isUrl(s))
  .registerFunction('gw.QueryString.decode(string): map<string, list<string>>', (_: unknown, s: string) => M.queryDecode(s))
  .registerFunction('gw.QueryString.encode(map<string, dyn>): string', (_: unknown, v: unknown) => M.queryEncode(v))
  .registerFunction('string.decodeQueryString(): map<string, list<string>>', (s: string) => M.queryDecode(s))
  .registerFunction('string.isQueryString(): bool', (s: string) => M.isQueryString(s))
  .registerFunction('map.encodeQueryString(): string', (v: unknown) => M.queryEncode(v))
  .registerFunction('gw.BasicAuth.encode(string, string): string', (_: unknown, u: string, p: string) => M.basicAuthEncode(u, p))
  .registerFunction('gw.Strings.quote(string): string', (_: unknown, s: string) => M.quote(s))
  .registerFunction('string.charAt(int): string', (s: string, i: bigint) => {
    if (i < 0n) throw new Error(`charAt(${i}): the index is negative`)
    return [...s][Number(i)] ?? ''
  })
  .registerFunction('string.format(list<dyn>): string', (s: string, args: unknown[]) => M.formatString(s, args))
  .registerFunction('string.reverse(): string', (s: string) => [...s].reverse().join(''))
  .registerFunction('string.lower(): string', (s: string) => s.toLowerCase())
  .registerFunction('string.upper(): string', (s: string) => s.toUpperCase())
  .registerFunction('string.replace(string, string): string', (s: string, a: string, b: string) => s.split(a).join(b))
  .registerFunction('string.replace(string, string, int): string', (s: string, a: string, b: string, n: bigint) => replaceN(s, a, b, Number(n)))
  .registerFunction('list.slice(int, int): list<dyn>', (l: unknown[], a: bigint, b: bigint) => sliceList(l, Number(a), Number(b)))
  .registerFunction('list.flatten(): list<dyn>', (l: unknown[]) => l.flat())
  .registerFunction('list.flatten(int): list<dyn>', (l: unknown[], d: bigint) => {
    if (d < 0n) throw new Error(`flatten(${d}): the depth is negative`)
    return l.flat(Number(d))
  })
  .registerFunction('list.distinct(): list<dyn>', (l: unknown[]) => [...new Set(l)])
  .registerFunction('list.sort(): list<dyn>', (l: unknown[]) => {
    for (const v of l) compareCel(v, l[0])
    return [...l].sort(compareCel)
  })
  .registerFunction('list.sortBy(ast, ast): list<dyn>', sortByMacro)
  .registerFunction('gw.Lists.range(int): list<int>', (_: unknown, n: bigint) => listsRange(n))
  .registerFunction('inCidrRanges(string, list<string>): bool', (ip: string, cidrs: string[]) =>
    cidrs.some((c) => inCidrRange(ip, c)))
  .registerFunction('string.isPrivateIp(): bool', (ip: string) => isPrivateIp(ip))
  .registerFunction('hasReqHeader(string): bool', (name: string) => currentRoot().req.headers[name.toLowerCase()] !== undefined)
  .registerFunction('getReqHeader(string): list<string>', (name: string) => currentRoot().req.headers[name.toLowerCase()] ?? [])
  .registerFunction('hasResHeader(string): bool', (name: string) => currentRoot().res.headers[name.toLowerCase()] !== undefined)
  .registerFunction('getResHeader(string): list<string>', (name: string) => currentRoot().res.headers[name.toLowerCase()] ?? [])
  .registerFunction('getQueryParam(string): list<string>', (name: string) => currentRoot().req.url.query_params[name] ?? [])
  .registerFunction('hasQueryParam(string): bool', (name: string) => currentRoot().req.url.query_params[name] !== undefined)
  .registerFunction('hasReqCookie(string): bool', (name: string) => currentRoot().req.cookies[name] !== undefined)
  // ngrok's getReqCookie returns the cookie; a missing one is a cookie with an empty value.
  .registerFunction('getReqCookie(string): gw.Cookie', (name: string) => currentRoot().req.cookies[name]?.[0] ?? new CookieVars(name, ''))

function replaceN(s: string, from: string, to: string, n: number): string {
  if (n < 0) return s.split(from).join(to)
  let out = s
  let at = 0
  for (let i = 0; i < n; i++) {
    const j = out.indexOf(from, at)
    if (j === -1) break
    out = out.slice(0, j) + to + out.slice(j + from.length)
    at = j + to.length
  }
  return out
}

function sliceList(l: unknown[], a: number, b: number): unknown[] {
  if (a < 0 || b > l.length || a > b) throw new Error(`list.slice(${a}, ${b}): out of range for a list of ${l.length}`)
  return l.slice(a, b)
}

/**
 * CEL's ordering of comparable values, as ngrok's `sort` and `sortBy` use it: int, uint,
 * double, bool, string, bytes, timestamp and duration, never two kinds mixed.
 */
function compareCel(a: unknown, b: unknown): number {
  const ka = sortKind(a)
  if (ka !== sortKind(b)) throw new Error('list.sort: the list mixes types')
  if (ka === 'timestamp') return Math.sign((a as Date).getTime() - (b as Date).getTime())
  if (ka === 'bytes') return Buffer.compare(a as Uint8Array, b as Uint8Array)
  if (ka === 'duration') {
    const x = a as CelDuration
    const y = b as CelDuration
    return x.seconds !== y.seconds ? (x.seconds < y.seconds ? -1 : 1) : Math.sign(x.nanos - y.nanos)
  }
  return a! < b! ? -1 : a! > b! ? 1 : 0
}

interface CelDuration { readonly seconds: bigint, readonly nanos: number }

function sortKind(v: unknown): string {
  const t = typeof v
  if (t === 'string' || t === 'bigint' || t === 'number' || t === 'boolean') return t === 'number' ? 'double' : t
  if (v instanceof Date) return 'timestamp'
  if (v instanceof Uint8Array) return 'bytes'
  if (v !== null && typeof v === 'object' && typeof (v as CelDuration).seconds === 'bigint' && typeof (v as CelDuration).nanos === 'number') return 'duration'
  throw new Error('list.sort: only numbers, strings, booleans, bytes, timestamps and durations sort')
}

/** `lists.range(n)`: 0 … n-1, bounded so that one expression cannot allocate without limit. */
const MAX_RANGE = 100_000n

function listsRange(n: bigint): bigint[] {
  if (n < 0n) throw new Error(`lists.range(${n}): the length is negative`)
  if (n > MAX_RANGE) throw new Error(`lists.range(${n}): at most ${MAX_RANGE} elements`)
  return Array.from({ length: Number(n) }, (_, i) => BigInt(i))
}

/*
 * `list.sortBy(e, key)` is a macro (the key is an expression over the bound name), through
 * cel-js's documented macro hooks: the key is type-checked in a context with `e` bound to
 * the list's element type, then evaluated once per element; the sort is stable, as Go's
 * sort.SliceStable in ngrok's implementation.
 */
interface MacroAst { readonly op: string, readonly args: unknown }
interface SortByMacro {
  readonly receiver: MacroAst
  readonly name: string
  readonly key: MacroAst
  keyCtx: CelContext | undefined
}
interface CelType { readonly kind: string, readonly valueType?: CelType }
interface CelContext {
  forkWithVariable(name: string, type: CelType): CelContext
  reuse(parent: CelContext): CelContext
  setIterValue(value: unknown, evaluator: unknown): CelContext
}
interface CelChecker { check(ast: MacroAst, ctx: CelContext): CelType }
interface CelEvaluator { run(ast: MacroAst, ctx: CelContext): unknown }

function sortByMacro({ args, receiver }: { args: MacroAst[], receiver: MacroAst }) {
  const [binding, key] = args
  if (binding?.op !== 'id' || typeof binding.args !== 'string') throw new Error('sortBy(var, key): the first argument must be a name')
  return {
    receiver, name: binding.args, key: key!, keyCtx: undefined,
    typeCheck(checker: CelChecker, m: SortByMacro, ctx: CelContext): CelType {
      const listType = checker.check(m.receiver, ctx)
      if (listType.kind !== 'list' && listType.kind !== 'dyn') throw new Error(`sortBy(var, key) needs a list, not a ${listType.kind}`)
      m.keyCtx = ctx.forkWithVariable(m.name, listType.kind === 'list' ? listType.valueType! : listType)
      checker.check(m.key, m.keyCtx)
      return listType
    },
    evaluate(evaluator: CelEvaluator, m: SortByMacro, ctx: CelContext): unknown[] {
      const list = evaluator.run(m.receiver, ctx)
      if (!Array.isArray(list)) throw new Error('sortBy(var, key) needs a list')
      const keyed = list.map((item, index) => {
        const k = evaluator.run(m.key, m.keyCtx!.reuse(ctx).setIterValue(item, evaluator))
        if (k instanceof Promise) throw new Error('sortBy(var, key): the key must not call asynchronous functions')
        return { item, index, k }
      })
      for (const e of keyed) compareCel(e.k, keyed[0]!.k)
      return keyed.sort((a, b) => compareCel(a.k, b.k) || a.index - b.index).map((e) => e.item)
    },
  }
}

export type CompiledExpression = (root: EvalRoot) => unknown

const FIELDS: Record<string, readonly string[]> = {
  req: ['method', 'host', 'version', 'url', 'headers', 'cookies', 'content_type', 'content_encoding', 'content_length', 'user_agent', 'ts'],
  'req.url': URL_FIELDS,
  'req.user_agent': USER_AGENT_FIELDS,
  'req.content_type': CONTENT_TYPE_FIELDS,
  'req.ts': ['header_received'],
  conn: ['client_ip', 'client_port', 'ts', 'tls'],
  'conn.tls': ['version', 'cipher_suite', 'sni', 'negotiated_alpn', 'session_resumed', 'client'],
  'conn.tls.client': ['extensions', 'issuer', 'pem', 'san', 'serial_number', 'signature_algorithm', 'subject', 'validity'],
  'conn.tls.client.subject': CERT_NAME_FIELDS,
  'conn.tls.client.issuer': CERT_NAME_FIELDS,
  'conn.tls.client.san': ['dns_names', 'email_addresses', 'ip_addresses', 'uris'],
  'conn.tls.client.validity': ['not_before', 'not_after'],
  'conn.ts': ['start'],
  res: ['status_code', 'headers', 'location'],
  time: ['now'],
  endpoint: ['id', 'name', 'scheme', 'host', 'url'],
}
/**
 * Variables that one action's own expression sees beside the usual ones (http-request's
 * `retry_condition` has `attempts` and `last_attempt`): name → CEL type. They are declared
 * in a copy of the environment, so no other expression can name them.
 */
export type ExtraVariables = Readonly<Record<string, string>>
const extendedEnvs = new Map<string, Environment>()

function envWith(extra: ExtraVariables | undefined): Environment {
  if (extra === undefined) return env
  const key = JSON.stringify(extra)
  let e = extendedEnvs.get(key)
  if (e === undefined) {
    e = env.clone()
    for (const [name, type] of Object.entries(extra)) e.registerVariable(name, type)
    extendedEnvs.set(key, e)
  }
  return e
}

/** The root an expression compiled with extra variables evaluates against: `root` plus their values. */
export function rootWith(root: EvalRoot, values: Readonly<Record<string, unknown>>): EvalRoot {
  return Object.assign(Object.create(root) as EvalRoot, values)
}

export const VARIABLES = ['req', 'conn', 'res', 'time', 'endpoint', 'rand', 'secrets', 'actions', 'vars', 'hash', 'base64', 'json', 'url', 'queryString', 'basic_auth', 'strings', 'lists']

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
function allowedNames(source: string, message: string, offset: number, extra?: ExtraVariables): readonly string[] | undefined {
  if (message.startsWith('Unknown variable')) return extra ? [...VARIABLES, ...Object.keys(extra)] : VARIABLES
  if (!message.startsWith('No such key')) return undefined
  const chain = /([A-Za-z_][\w.]*)\.\s*$/.exec(source.slice(0, offset))?.[1]
  return chain ? FIELDS[chain] : undefined
}

/**
 * Parse and type-check once. `expectBool` is for rule expressions, which must be
 * boolean; interpolations and bucket keys may be of any type.
 */
export function compileExpression(original: string, expectBool: boolean, extra?: ExtraVariables): CompiledExpression {
  const env = envWith(extra)
  let parsed: { ast: unknown }
  try {
    parsed = env.parse(original) as unknown as { ast: unknown }
  } catch {
    throw checkError(original, env.check(original), (o) => o, extra)
  }
  const { source, originalOffset } = rewriteExpression(original, parsed.ast, STRING_LIKES)
  const checked = env.check(source)
  if (!checked.valid) throw checkError(source, checked, originalOffset, extra)
  if (expectBool && checked.type !== 'bool' && checked.type !== 'dyn') {
    throw new ExpressionError(`must be a boolean expression, but its type is ${checked.type}`, 0)
  }
  const fn = env.parse(source) as unknown as ((ctx: unknown) => unknown) & { ast: unknown }
  const secrets = activeSecretStore()
  checkLiterals(fn.ast, originalOffset, secrets)
  return function evaluateExpression(root: EvalRoot): unknown {
    const previous = current
    const previousSecrets = currentSecrets
    current = root
    currentSecrets = secrets
    try {
      return fn(root)
    } finally {
      current = previous
      currentSecrets = previousSecrets
    }
  }
}

function checkError(source: string, checked: { error?: unknown }, originalOffset: (o: number) => number, extra?: ExtraVariables): ExpressionError {
  const err = checked.error as { summary?: string; message: string; range?: { start: number } }
  let message = originalMessage(err.summary ?? err.message.split('\n')[0]!)
  const offset = err.range?.start ?? 0
  // ngrok's time.now is a string; gw's was a timestamp before it followed ngrok.
  if (/time\.now/.test(source) && message.includes("overload for 'string.get")) {
    message += ' (time.now is an RFC 3339 string, as in ngrok: use timestamp(time.now))'
  }
  return new ExpressionError(message, originalOffset(offset), allowedNames(source, message, offset, extra))
}

/**
 * What can be checked at load in literal arguments: a `matches()` pattern compiles as
 * RE2, and a `secrets.get('vault', 'name')` names a secret the vault holds.
 */
function checkLiterals(ast: unknown, originalOffset: (o: number) => number, secrets: SecretStore): void {
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit)
    if (typeof node !== 'object' || node === null || typeof (node as { op?: unknown }).op !== 'string') return
    const n = node as { op: string; args: unknown }
    const args = n.args as unknown[]
    if ((n.op === 'rcall' || n.op === 'call') && args[0] === MATCHES_ALIAS) {
      const patternNode = (n.op === 'rcall' ? (args[2] as unknown[])[0] : (args[1] as unknown[])[1]) as
        { op?: string; args?: unknown; start?: number } | undefined
      if (patternNode?.op === 'value' && typeof patternNode.args === 'string') {
        try {
          compileRe2(patternNode.args)
        } catch (err) {
          if (err instanceof Re2SyntaxError) throw new ExpressionError(`matches(): ${err.message}`, originalOffset(patternNode.start ?? 0))
          throw err
        }
      }
    }
    if (n.op === 'rcall' && args[0] === 'get' && (args[1] as { op?: string; args?: unknown })?.op === 'id' && (args[1] as { args?: unknown }).args === 'secrets') {
      const [vault, name] = (args[2] as Array<{ op?: string; args?: unknown }>).map((a) => (a?.op === 'value' && typeof a.args === 'string' ? a.args : undefined))
      if (vault !== undefined && name !== undefined && secrets.get(vault, name) === undefined) {
        throw new ExpressionError(missingSecret(vault, name), originalOffset((n as { start?: number }).start ?? 0))
      }
    }
    visit(n.args)
  }
  visit(ast)
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
  // A certificate's subject, issuer or SANs: their text, `CN=…,O=…`.
  if (value instanceof CertNameVars || value instanceof CertSanVars) return value._gw_s
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

/** Compile `${…}` interpolation (split by template-split.ts). Strings without `${` return a constant function. */
export function compileTemplate(text: string): Template {
  if (!text.includes('${')) return () => text
  let split
  try {
    split = splitTemplate(text)
  } catch (err) {
    if (err instanceof UnclosedInterpolationError) throw new ExpressionError(err.message, err.offset)
    throw err
  }
  const parts = split.map((p): string | CompiledExpression => {
    if (typeof p === 'string') return p
    try {
      return compileExpression(p.source, false)
    } catch (err) {
      if (err instanceof ExpressionError) throw new ExpressionError(`in \${${p.source}}: ${err.message}`, p.offset + err.offset, err.allowed)
      throw err
    }
  })
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
