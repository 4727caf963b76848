/**
 * The variables CEL expressions see, with ngrok's names (`req.url.path`,
 * `conn.client_ip`, `res.status_code`, `time.now`, `actions.ngrok.*`, `vars.*`).
 *
 * They are classes with lazy getters rather than plain objects built up front: a request
 * whose rules only look at `req.url.path` never builds the header map or parses the
 * query. The CEL library reads registered message types by plain property access, so
 * prototype getters work. Derived values are cached against what they derive from
 * (`target`, the raw header array), so an action that rewrites the URL or a header is
 * seen by the next rule.
 */
import { MACRO_RECEIVERS, type Base64Macros, type BasicAuthMacros, type HashMacros, type JsonMacros, type QueryStringMacros, type ListsMacros, type StringsMacros, type UrlMacros } from './macros.js'
import { headersToMap } from './headers.js'
import type { PolicyRequest, PolicyResponse } from './types.js'
import { UserAgentVars } from './user-agent.js'
import { parseCertificatePem, type CertExtension, type CertName, type ParsedCertificate } from './x509.js'

export class UrlVars {
  private readonly request: PolicyRequest
  readonly target: string
  private readonly qIndex: number
  private qp: Record<string, string[]> | undefined

  constructor(request: PolicyRequest) {
    this.request = request
    this.target = request.target
    this.qIndex = request.target.indexOf('?')
  }

  get scheme(): string {
    return this.request.scheme
  }
  get host(): string {
    return hostWithoutPort(this.request.host)
  }
  get port(): bigint {
    const h = this.request.host
    const c = h.lastIndexOf(':')
    if (c > 0 && !h.endsWith(']')) return BigInt(Number(h.slice(c + 1)) || 0)
    return this.request.scheme === 'https' ? 443n : 80n
  }
  get raw_path(): string {
    return this.qIndex === -1 ? this.target : this.target.slice(0, this.qIndex)
  }
  get path(): string {
    const raw = this.raw_path
    if (!raw.includes('%')) return raw
    try {
      return decodeURIComponent(raw)
    } catch {
      return raw
    }
  }
  get query(): string {
    return this.qIndex === -1 ? '' : this.target.slice(this.qIndex + 1)
  }
  get query_params(): Record<string, string[]> {
    if (this.qp) return this.qp
    const out = Object.create(null) as Record<string, string[]>
    if (this.qIndex !== -1) {
      for (const [k, v] of new URLSearchParams(this.query)) {
        const list = out[k]
        if (list) list.push(v)
        else out[k] = [v]
      }
    }
    this.qp = out
    return out
  }
  /** The whole URL, `scheme://host[:port]/path?query`: what `${req.url}` writes, as in ngrok. */
  get raw(): string {
    return `${this.request.scheme}://${this.request.host}${this.target}`
  }
  get authority(): string {
    return this.request.host
  }
  /** Path and query: `req.url.uri`. */
  get uri(): string {
    return this.target
  }
  /** A request-target never carries `user:password@`. */
  get user_password(): string {
    return ''
  }
  /** What `req.url` is as a string (see cel-rewrite.ts): the whole URL, as in ngrok. */
  get _gw_s(): string {
    return this.raw
  }
  toString(): string {
    return this.raw
  }
  /** Never the request behind it: its headers hold credentials. */
  toJSON(): string {
    return this.raw
  }
}

export class RequestVars {
  private readonly request: PolicyRequest
  private urlVars: UrlVars | undefined
  private headerMap: Record<string, string[]> | undefined
  private headerSource: string[] | undefined
  private headerLength = 0
  private userAgent: UserAgentVars | undefined

  constructor(request: PolicyRequest) {
    this.request = request
  }

  get method(): string {
    return this.request.method
  }
  get host(): string {
    return this.request.host
  }
  get version(): string {
    return '1.1'
  }
  get url(): UrlVars {
    if (!this.urlVars || this.urlVars.target !== this.request.target) {
      this.urlVars = new UrlVars(this.request)
    }
    return this.urlVars
  }
  get headers(): Record<string, string[]> {
    const raw = this.request.rawHeaders
    if (!this.headerMap || this.headerSource !== raw || this.headerLength !== raw.length) {
      this.headerMap = headersToMap(raw)
      this.headerSource = raw
      this.headerLength = raw.length
    }
    return this.headerMap
  }
  /** ngrok's `map[string][]cookie`: `req.cookies['sid'][0].value`, in Cookie-header order. */
  get cookies(): Record<string, CookieVars[]> {
    const out = Object.create(null) as Record<string, CookieVars[]>
    for (const line of this.headers['cookie'] ?? []) {
      for (const part of line.split(';')) {
        const eq = part.indexOf('=')
        if (eq <= 0) continue
        const k = part.slice(0, eq).trim()
        const v = part.slice(eq + 1).trim()
        ;(out[k] ??= []).push(new CookieVars(k, v))
      }
    }
    return out
  }
  get content_type(): ContentTypeVars {
    return new ContentTypeVars(this.headers['content-type']?.[0] ?? '')
  }
  get content_encoding(): string[] {
    return (this.headers['content-encoding'] ?? []).flatMap((v) => v.split(',').map((e) => e.trim()).filter(Boolean))
  }
  get ts(): RequestTsVars {
    return new RequestTsVars(this.request)
  }
  get content_length(): bigint {
    const v = this.headers['content-length']?.[0]
    const n = v === undefined ? -1 : Number(v)
    return BigInt(Number.isSafeInteger(n) ? n : -1)
  }
  get user_agent(): UserAgentVars {
    const header = this.headers['user-agent']?.[0] ?? ''
    if (this.userAgent?._gw_s !== header) this.userAgent = new UserAgentVars(header)
    return this.userAgent
  }
  /** `${req}` in a template: the request line's parts, never its headers or cookies. */
  toJSON(): Record<string, string> {
    return { method: this.method, url: this.url.raw, host: this.host, version: this.version }
  }
}

/** `conn.tls.*`: the client's TLS connection to the relay; empty strings for plain http. */
export class ConnTlsVars {
  private readonly request: PolicyRequest
  constructor(request: PolicyRequest) {
    this.request = request
  }
  get version(): string {
    return this.request.tls?.version ?? ''
  }
  get cipher_suite(): string {
    return this.request.tls?.cipher ?? ''
  }
  get sni(): string {
    return this.request.tls?.sni ?? ''
  }
  get negotiated_alpn(): string {
    return this.request.tls?.alpn ?? ''
  }
  get session_resumed(): boolean {
    return this.request.tls?.resumed ?? false
  }
  /**
   * The client's certificate, on an https endpoint whose terminate-tls asked for one (the
   * relay sends it); absent when there is none, so `has(conn.tls.client)` is false and a
   * rule reading one of its fields does not match (the expression fails: no such key).
   */
  get client(): TlsClientVars | undefined {
    const pem = this.request.tls?.client?.pem
    if (pem === undefined) return undefined
    if (this.clientVars?.pem !== pem) this.clientVars = new TlsClientVars(pem)
    return this.clientVars
  }
  private clientVars: TlsClientVars | undefined
}

/**
 * `actions.ngrok.terminate_tls.*` on an https endpoint, whose terminate-tls the relay ran
 * on the connection: the same values as `conn.tls.*` (ngrok documents both).
 */
export function terminateTlsResult(request: PolicyRequest): Record<string, unknown> {
  const tls = new ConnTlsVars(request)
  const client = tls.client
  return {
    version: tls.version, cipher_suite: tls.cipher_suite, sni: tls.sni, error_code: '', error_message: '', warnings: [],
    ...(client ? { client } : {}),
  }
}

const EMPTY_NAME: CertName = { text: '', common_name: '', country: [], locality: [], organization: [], organizational_unit: [], postal_code: [], province: [], street_address: [] }

/** `conn.tls.client.subject` / `.issuer`: as a string the whole name (`CN=…,O=…`), with each attribute beside it. */
export class CertNameVars {
  private readonly n: CertName
  constructor(n: CertName) {
    this.n = n
  }
  get common_name(): string {
    return this.n.common_name
  }
  get country(): string[] {
    return this.n.country
  }
  get locality(): string[] {
    return this.n.locality
  }
  get organization(): string[] {
    return this.n.organization
  }
  get organizational_unit(): string[] {
    return this.n.organizational_unit
  }
  get postal_code(): string[] {
    return this.n.postal_code
  }
  get province(): string[] {
    return this.n.province
  }
  get street_address(): string[] {
    return this.n.street_address
  }
  get _gw_s(): string {
    return this.n.text
  }
  toString(): string {
    return this.n.text
  }
  toJSON(): string {
    return this.n.text
  }
}

/** `conn.tls.client.san`: as a string `DNS:a.example, IP Address:10.0.0.1`, with each kind's list beside it. */
export class CertSanVars {
  private readonly san: ParsedCertificate['san']
  constructor(san: ParsedCertificate['san']) {
    this.san = san
  }
  get dns_names(): string[] {
    return this.san.dns_names
  }
  get email_addresses(): string[] {
    return this.san.email_addresses
  }
  get ip_addresses(): string[] {
    return this.san.ip_addresses
  }
  get uris(): string[] {
    return this.san.uris
  }
  get _gw_s(): string {
    return this.san.text
  }
  toString(): string {
    return this.san.text
  }
  toJSON(): string {
    return this.san.text
  }
}

export class CertValidityVars {
  readonly not_before: Date
  readonly not_after: Date
  constructor(notBefore: Date, notAfter: Date) {
    this.not_before = notBefore
    this.not_after = notAfter
  }
}

export class CertExtensionVars {
  readonly id: string
  readonly critical: boolean
  readonly value: Uint8Array
  constructor(e: CertExtension) {
    this.id = e.id
    this.critical = e.critical
    this.value = e.value
  }
  toJSON(): Record<string, unknown> {
    return { id: this.id, critical: this.critical, value: Buffer.from(this.value).toString('base64') }
  }
}

/** `conn.tls.client.*`, ngrok's names, read from the certificate's DER once (x509.ts). */
export class TlsClientVars {
  readonly pem: string
  private parsed: ParsedCertificate | null | undefined
  constructor(pem: string) {
    this.pem = pem
  }
  private get cert(): ParsedCertificate | null {
    if (this.parsed === undefined) this.parsed = parseCertificatePem(this.pem) ?? null
    return this.parsed
  }
  get subject(): CertNameVars {
    return new CertNameVars(this.cert?.subject ?? EMPTY_NAME)
  }
  get issuer(): CertNameVars {
    return new CertNameVars(this.cert?.issuer ?? EMPTY_NAME)
  }
  get san(): CertSanVars {
    return new CertSanVars(this.cert?.san ?? { dns_names: [], email_addresses: [], ip_addresses: [], uris: [], text: '' })
  }
  get serial_number(): string {
    return this.cert?.serial_number ?? ''
  }
  get signature_algorithm(): string {
    return this.cert?.signature_algorithm ?? ''
  }
  get validity(): CertValidityVars {
    return new CertValidityVars(this.cert?.not_before ?? new Date(0), this.cert?.not_after ?? new Date(0))
  }
  get extensions(): CertExtensionVars[] {
    return (this.cert?.extensions ?? []).map((e) => new CertExtensionVars(e))
  }
  /** `${conn.tls.client}`: the subject, never the whole certificate. */
  toJSON(): Record<string, string> {
    return { subject: this.subject._gw_s, issuer: this.issuer._gw_s, serial_number: this.serial_number }
  }
}

export class ConnVars {
  private readonly request: PolicyRequest
  constructor(request: PolicyRequest) {
    this.request = request
  }
  get client_ip(): string {
    return this.request.clientIp
  }
  get client_port(): bigint {
    return BigInt(this.request.clientPort)
  }
  get ts(): ConnTsVars {
    return new ConnTsVars(this.request)
  }
  get tls(): ConnTlsVars {
    return new ConnTlsVars(this.request)
  }
  toJSON(): Record<string, string | number> {
    return { client_ip: this.client_ip, client_port: this.request.clientPort }
  }
}

export class ResponseVars {
  private readonly root: EvalRoot
  private headerMap: Record<string, string[]> | undefined
  private headerSource: string[] | undefined
  private headerLength = 0

  constructor(root: EvalRoot) {
    this.root = root
  }
  get status_code(): bigint {
    return BigInt(this.root.response?.status ?? 0)
  }
  get headers(): Record<string, string[]> {
    const raw = this.root.response?.rawHeaders ?? []
    if (!this.headerMap || this.headerSource !== raw || this.headerLength !== raw.length) {
      this.headerMap = headersToMap(raw)
      this.headerSource = raw
      this.headerLength = raw.length
    }
    return this.headerMap
  }
  /** ngrok's `res.location`: the Location header, empty without one. */
  get location(): string {
    return this.headers['location']?.[0] ?? ''
  }
  toJSON(): Record<string, number> {
    return { status_code: this.root.response?.status ?? 0 }
  }
}

/** `endpoint.*`: gw has no ngrok endpoint ids; `id` and `name` are the endpoint's name in the agent. */
export class EndpointVars {
  private readonly request: PolicyRequest
  private readonly endpointName: string
  constructor(request: PolicyRequest, endpointName: string) {
    this.request = request
    this.endpointName = endpointName
  }
  get id(): string {
    return this.endpointName
  }
  get name(): string {
    return this.endpointName
  }
  get scheme(): string {
    return this.request.scheme
  }
  get host(): string {
    return hostWithoutPort(this.request.host)
  }
  get url(): string {
    return `${this.request.scheme}://${this.request.host}`
  }
  toJSON(): Record<string, string> {
    return { id: this.id, name: this.name, url: this.url }
  }
}

/** A cookie of `req.cookies` or `getReqCookie()`; as a string it is its value. */
export class CookieVars {
  readonly name: string
  readonly value: string
  constructor(name: string, value: string) {
    this.name = name
    this.value = value
  }
  toJSON(): Record<string, string> {
    return { name: this.name, value: this.value }
  }
}

/** `req.content_type`: as a string the media type; `.raw` the header, `.parameters` its parameters. */
export class ContentTypeVars {
  readonly raw: string
  constructor(raw: string) {
    this.raw = raw
  }
  get _gw_s(): string {
    const semi = this.raw.indexOf(';')
    return (semi === -1 ? this.raw : this.raw.slice(0, semi)).trim().toLowerCase()
  }
  get parameters(): Record<string, string> {
    const out = Object.create(null) as Record<string, string>
    for (const part of this.raw.split(';').slice(1)) {
      const eq = part.indexOf('=')
      if (eq <= 0) continue
      let v = part.slice(eq + 1).trim()
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1')
      out[part.slice(0, eq).trim().toLowerCase()] = v
    }
    return out
  }
  toJSON(): string {
    return this._gw_s
  }
}

/** `req.ts.header_received`: when the relay had the whole request head. */
export class RequestTsVars {
  private readonly request: PolicyRequest
  constructor(request: PolicyRequest) {
    this.request = request
  }
  get header_received(): Date {
    return new Date(this.request.receivedAt)
  }
}

/** `conn.ts.start`: when the client's connection to the relay was accepted. */
export class ConnTsVars {
  private readonly request: PolicyRequest
  constructor(request: PolicyRequest) {
    this.request = request
  }
  get start(): Date {
    return new Date(this.request.connectedAt ?? this.request.receivedAt)
  }
}

/** `time.now`: ngrok's RFC 3339 string (UTC); `timestamp(time.now)` makes it a timestamp. */
export class TimeVars {
  private readonly clock: () => number
  constructor(clock: () => number) {
    this.clock = clock
  }
  get now(): string {
    // Go's time.RFC3339, which ngrok writes: whole seconds, `Z`.
    return new Date(this.clock()).toISOString().replace(/\.\d+Z$/, 'Z')
  }
}

/** `rand.double()`, `rand.int(min, max)`: the functions are registered on this type in cel.ts. */
export class RandVars {}
const RAND = new RandVars()

/** `secrets.get(vault, name)`: a marker; the vault is the one the policy was compiled with (cel.ts). */
export class SecretsVars {}
const SECRETS = new SecretsVars()

/** The root object every expression of one request evaluates against. */
export interface EvalState {
  readonly actions: Record<string, unknown>
  readonly vars: Record<string, unknown>
  response: PolicyResponse | undefined
}

export class EvalRoot {
  readonly request: PolicyRequest
  private readonly state: EvalState
  private readonly clock: () => number
  private readonly endpointName: string
  private reqVars: RequestVars | undefined
  private connVars: ConnVars | undefined
  private resVars: ResponseVars | undefined

  constructor(request: PolicyRequest, state: EvalState, clock: () => number, endpointName = '') {
    this.request = request
    this.state = state
    this.clock = clock
    this.endpointName = endpointName
  }

  /** The response being processed: actions that replace it are seen by the next rule. */
  get response(): PolicyResponse | undefined {
    return this.state.response
  }
  get actions(): Record<string, unknown> {
    return this.state.actions
  }
  get vars(): Record<string, unknown> {
    return this.state.vars
  }

  get req(): RequestVars {
    return (this.reqVars ??= new RequestVars(this.request))
  }
  get conn(): ConnVars {
    return (this.connVars ??= new ConnVars(this.request))
  }
  get res(): ResponseVars {
    return (this.resVars ??= new ResponseVars(this))
  }
  get time(): TimeVars {
    return new TimeVars(this.clock)
  }
  get endpoint(): EndpointVars {
    return new EndpointVars(this.request, this.endpointName)
  }
  get rand(): RandVars {
    return RAND
  }
  get secrets(): SecretsVars {
    return SECRETS
  }
  get hash(): HashMacros {
    return MACRO_RECEIVERS.hash
  }
  get base64(): Base64Macros {
    return MACRO_RECEIVERS.base64
  }
  get json(): JsonMacros {
    return MACRO_RECEIVERS.json
  }
  get url(): UrlMacros {
    return MACRO_RECEIVERS.url
  }
  get queryString(): QueryStringMacros {
    return MACRO_RECEIVERS.queryString
  }
  get basic_auth(): BasicAuthMacros {
    return MACRO_RECEIVERS.basic_auth
  }
  get strings(): StringsMacros {
    return MACRO_RECEIVERS.strings
  }
  get lists(): ListsMacros {
    return MACRO_RECEIVERS.lists
  }
}

/** `example.com:8080` → `example.com`; a bracketed IPv6 host with no port stays whole. */
function hostWithoutPort(host: string): string {
  const c = host.lastIndexOf(':')
  return c > 0 && !host.endsWith(']') ? host.slice(0, c) : host
}
