/**
 * The policy engine: validate a document once, compile every expression and action
 * once, and run the phases per request.
 *
 * The agent's pipeline, drawn as data:
 *
 *   stream → on_http_request rules → (respond | forward → upstream) → on_http_response rules → back
 *
 * Document shape (ngrok's, plus gw's `upstreams`):
 *
 * ```yaml
 * upstreams: {api: {targets: [localhost:3001, localhost:3002], strategy: round_robin}}
 * on_http_request:
 *   - name: api
 *     expressions: ["req.url.path.startsWith('/api')"]
 *     actions: [{type: forward, config: {upstream: api}}]
 * on_http_response: [...]
 * ```
 */
import { Readable } from 'node:stream'
import { isPromise, type CompileContext, type RespondTerminal, type Terminal } from './action.js'
import { ACTIONS } from './actions/index.js'
import { readHttpsTerminateTls } from './actions/terminate-tls.js'
import type { TerminateTlsRequest } from '@gw/protocol'
import type { CompiledExpression } from './cel.js'
import { expressionAt } from './compile-helpers.js'
import { runRules, type CompiledActionStep, type CompiledRule } from './compose.js'
import { ConfigReader, describe } from './config-reader.js'
import { NO_SOURCE, type PolicySource } from './source.js'
import type { PolicyState } from './state.js'
import type { EndpointKind, Phase, PolicyEvents, PolicyRequest, PolicyResponse, RequestOutcome, TcpVerdict } from './types.js'
import { EvalRoot } from './variables.js'
import { getHeader, removeHeaders } from './headers.js'
import { createSseTransform } from './sse.js'
import { withSecretStore, type SecretStore } from './secrets.js'
import { createUpstreamPool, STRATEGIES, type UpstreamEvent, type UpstreamPool, type UpstreamPoolConfig } from '../upstream/index.js'

export const PHASES: readonly Phase[] = ['on_http_request', 'on_http_response']
/** The phase of tcp and tls endpoints: their connections carry no HTTP. */
export const TCP_PHASES: readonly Phase[] = ['on_tcp_connect']

export interface CompilePolicyOptions {
  /** Where the document came from, for messages and line numbers (see `loadPolicyFile`). */
  source?: PolicySource
  /** Named pools from the agent config, in addition to the document's `upstreams`. */
  upstreams?: Record<string, unknown> | ReadonlyMap<string, UpstreamPool>
  /** The clock for rate limits, sessions, JWT expiry and `time.now` (epoch ms). */
  now?: () => number
  events?: PolicyEvents
  /** The endpoint name, for log lines. */
  endpoint?: string
  /** For JWKS and OIDC discovery: a fetch that trusts a test CA, for example. */
  fetch?: typeof fetch
  /** The vault `secrets.get('vault', 'name')` reads (secrets.ts); none: every secret is missing. */
  secrets?: SecretStore
  /** The endpoint the policy is for (default http): tcp and tls take on_tcp_connect, http the HTTP phases. */
  kind?: EndpointKind
}

export interface CompiledPolicy {
  /** True when the policy has no rules: the agent skips the engine entirely. */
  readonly empty: boolean
  /**
   * True when on_http_response has rules. Without them, and without response hooks
   * registered in the request phase (a circuit breaker's), the agent streams the
   * upstream's answer straight through instead of handing it to onHttpResponse.
   */
  readonly hasResponseRules: boolean
  /** True when on_tcp_connect has rules (tcp and tls endpoints). */
  readonly hasTcpRules: boolean
  /** True when on_http_request has rules (the relay's cache would skip them: tunnel-runner.ts refuses the two together). */
  readonly hasRequestRules: boolean
  /**
   * An http endpoint's on_tcp_connect terminate-tls, which the relay runs on the
   * endpoint's HTTPS connections (mutual TLS, versions): what the agent asks it for.
   */
  readonly terminateTls: TerminateTlsRequest | undefined
  readonly upstreams: ReadonlyMap<string, UpstreamPool>
  onHttpRequest(req: PolicyRequest, state: PolicyState): Promise<RequestOutcome>
  onHttpResponse(req: PolicyRequest, res: PolicyResponse, state: PolicyState): Promise<PolicyResponse>
  /**
   * A new connection to a tcp or tls endpoint: undefined lets it through, a verdict
   * closes it (a terminating action ran: deny, restrict-ips…). `req` is the connection:
   * client address and port, the public host, scheme tcp or tls, no headers.
   */
  onTcpConnect(req: PolicyRequest, state: PolicyState): Promise<TcpVerdict | undefined>
  /** Stops health checks and timers. */
  close(): Promise<void>
}

function compileUpstreams(reader: ConfigReader, into: Map<string, UpstreamPool>, clock: () => number, events: PolicyEvents | undefined): void {
  const onEvent = events
    ? (e: UpstreamEvent): void => {
        const msg = e.kind === 'ejected'
          ? `upstream target ejected after a connection error`
          : `upstream target is ${e.kind} (health check)`
        events.emit('log', { level: e.kind === 'healthy' ? 'info' : 'warn', msg, fields: { pool: e.pool, target: e.origin, ...(e.forMs ? { for_ms: e.forMs } : {}) } })
      }
    : undefined
  for (const name of Object.keys(reader.value)) {
    const pool = reader.child(name, true)
    const targets = pool.stringList('targets', true, 1)
    const strategy = pool.oneOf('strategy', STRATEGIES, 'round_robin')
    let healthCheck: UpstreamPoolConfig['healthCheck']
    if (pool.has('health_check')) {
      const hc = pool.child('health_check', true)
      const path = hc.string('path')
      if (!path.startsWith('/')) hc.fail('path', 'must start with /')
      healthCheck = {
        path,
        intervalMs: hc.duration('interval', 10_000, 100),
        timeoutMs: hc.duration('timeout', 2_000, 10),
        healthyThreshold: hc.int('healthy_threshold', 1, 1, 100),
        unhealthyThreshold: hc.int('unhealthy_threshold', 2, 1, 100),
      }
      hc.done()
    }
    let ejection: UpstreamPoolConfig['ejection']
    if (pool.has('ejection')) {
      const ej = pool.child('ejection', true)
      ejection = { baseMs: ej.duration('base', 5_000, 1), maxMs: ej.duration('max', 60_000, 1) }
      ej.done()
    }
    pool.done()
    try {
      into.set(name, createUpstreamPool({ name, targets, strategy, healthCheck, ejection, clock, ...(onEvent ? { onEvent } : {}) }))
    } catch (err) {
      pool.fail('targets', (err as Error).message)
    }
  }
}

/**
 * on_tcp_connect on an http endpoint. Its connections end at the relay, which runs
 * terminate-tls there (versions, mutual TLS) for the agent; nothing else can run before a
 * request on them, so any other action, and any expression, is refused with the reason.
 * An empty phase (ngrok's migration guides write one) does nothing.
 */
function compileHttpsTcpConnect(root: ConfigReader): TerminateTlsRequest | undefined {
  const rules = root.list('on_tcp_connect', false)
  let found: TerminateTlsRequest | undefined
  rules.forEach((item, i) => {
    const rule: ConfigReader = new ConfigReader(item, ['on_tcp_connect', i], root.source, 'a rule ({name?, expressions?, actions})')
    rule.optString('name')
    if (rule.expressionList('expressions', false).length > 0) {
      rule.fail('expressions', 'are not supported in on_tcp_connect on an http endpoint: the relay runs its terminate-tls on every connection before any request, and evaluates no expressions there; match on conn.* in on_http_request instead')
    }
    const actions = rule.list('actions', true, 1)
    rule.done()
    actions.forEach((a, j) => {
      const action: ConfigReader = new ConfigReader(a, ['on_tcp_connect', i, 'actions', j], root.source, 'an action ({type, config})')
      const type = action.raw('type')
      if (type !== 'terminate-tls') {
        action.fail('type', `${typeof type === 'string' ? type : describe(type)} is not supported in on_tcp_connect on an http endpoint: its connections end at the relay, which runs only terminate-tls there; other on_tcp_connect actions run on tcp and tls endpoints (gw tcp, gw tls), and restrict-ips works in on_http_request`, ['terminate-tls'])
      }
      if (found) action.fail('type', 'terminate-tls is given twice; an endpoint has one TLS handshake')
      const config = action.child('config', false)
      action.done()
      found = readHttpsTerminateTls(config)
    })
  })
  return found
}

function compileRules(reader: ConfigReader, phase: Phase, ctx: CompileContext, key: string = phase): CompiledRule[] {
  const list = reader.list(key, false)
  return list.map((item, i) => {
    const rule: ConfigReader = new ConfigReader(item, [key, i], reader.source, 'a rule ({name?, expressions?, actions})')
    const name = rule.optString('name')
    const expressions = rule.expressionList('expressions', false).map((e, j) => {
      const fn = expressionAt(rule, [key, i, 'expressions', j], e, true)
      return ctx.events ? reportFailures(fn, e, ctx.events, phase, i) : fn
    })
    const actionItems = rule.list('actions', true, 1)
    rule.done()
    const actions: CompiledActionStep[] = actionItems.map((a, j) => {
      const action: ConfigReader = new ConfigReader(a, [key, i, 'actions', j], reader.source, 'an action ({type, config})')
      const type = action.raw('type')
      const def = typeof type === 'string' ? ACTIONS.get(type) : undefined
      if (!def) {
        action.fail('type', type === undefined ? 'is required' : `is not a known action: ${describe(type)}`, [...ACTIONS.keys()].sort())
      }
      if (!def.phases.includes(phase)) {
        action.fail('type', `${def.type} cannot run in ${phase}`, def.phases)
      }
      const config = action.child('config', false)
      action.done()
      return { type: def.type, run: def.compile(config, ctx) }
    })
    return { name, expressions, actions }
  })
}

/**
 * An expression that fails at run time (a missing header index, an action result that is
 * not there) counts as no match; the first failure of each expression is logged at debug
 * level, so a rule that never matches can be explained.
 */
function reportFailures(fn: CompiledExpression, text: string, events: PolicyEvents, phase: Phase, rule: number): CompiledExpression {
  let reported = false
  return function evaluateReported(root) {
    try {
      return fn(root)
    } catch (err) {
      if (!reported) {
        reported = true
        events.emit('log', {
          level: 'debug',
          msg: 'a policy expression failed, so its rule does not match',
          fields: { rule: `${phase}[${rule}]`, expression: text, error: (err as Error).message.split('\n')[0] },
        })
      }
      throw err
    }
  }
}

const EMPTY_BODY: readonly Buffer[] = []
const CONTENT_LENGTH: ReadonlySet<string> = new Set(['content-length'])

export function terminalToResponse(t: RespondTerminal): PolicyResponse {
  const headers = t.headers
  let body: Readable
  if (t.body instanceof Readable) body = t.body
  else {
    const buf = typeof t.body === 'string' ? Buffer.from(t.body) : t.body
    let hasLength = false
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === 'content-length') hasLength = true
    if (!hasLength) headers.push('content-length', String(buf.length))
    body = Readable.from(buf.length === 0 ? EMPTY_BODY : [buf])
  }
  // The agent names the code in the response head, and the relay sets gw-error-code from it.
  const response: PolicyResponse = t.errorCode ? { status: t.status, rawHeaders: headers, body, errorCode: t.errorCode } : { status: t.status, rawHeaders: headers, body }
  if (t.close) response.close = true
  return response
}

/**
 * The endpoint a document is written for, when nothing else says: tcp when it has
 * on_tcp_connect and no HTTP phase (ngrok's TCP and TLS examples), http otherwise.
 * `gw policy check` uses it; `gw tcp`/`gw tls` and `gw http` say what they are.
 */
export function policyKind(doc: unknown): EndpointKind {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'http'
  const has = (k: string): boolean => Object.hasOwn(doc, k)
  return has('on_tcp_connect') && !['on_http_request', 'on_http_response', 'on_event_stream_message', 'inbound', 'outbound'].some(has) ? 'tcp' : 'http'
}

export function compilePolicy(doc: unknown, options: CompilePolicyOptions = {}): CompiledPolicy {
  return withSecretStore(options.secrets, () => compileDocument(doc, options))
}

function compileDocument(doc: unknown, options: CompilePolicyOptions): CompiledPolicy {
  const source = options.source ?? NO_SOURCE
  const clock = options.now ?? Date.now
  const kind = options.kind ?? 'http'
  const tcp = kind !== 'http'
  const root: ConfigReader = new ConfigReader(doc, [], source, tcp ? 'a traffic policy (a map with on_tcp_connect)' : 'a traffic policy (a map with on_http_request and/or on_http_response)')
  // An http endpoint's connections end at the relay: its on_tcp_connect may hold terminate-tls only, which the relay runs.
  const terminateTls = !tcp && root.has('on_tcp_connect') ? compileHttpsTcpConnect(root) : undefined
  if (tcp) {
    for (const key of ['on_http_request', 'on_http_response', 'on_event_stream_message', 'inbound', 'outbound']) {
      if (root.has(key)) root.fail(key, `is not supported on a ${kind} endpoint: its connections carry no HTTP gw reads; use on_tcp_connect`, [...TCP_PHASES])
    }
  }
  // ngrok's first policy format named the phases inbound and outbound; old policies still use them.
  const keys: Record<'on_http_request' | 'on_http_response' | 'on_event_stream_message', string> = { on_http_request: 'on_http_request', on_http_response: 'on_http_response', on_event_stream_message: 'on_event_stream_message' }
  for (const [legacy, phase] of [['inbound', 'on_http_request'], ['outbound', 'on_http_response']] as const) {
    if (!root.has(legacy)) continue
    if (root.has(phase)) root.fail(legacy, `is the earlier name of ${phase}; give one of them`)
    keys[phase] = legacy
  }

  const upstreams = new Map<string, UpstreamPool>()
  // Pools handed in as a Map belong to the caller; close() stops only the ones made here.
  const given = new Set<UpstreamPool>()
  const disposables: Array<() => void | Promise<void>> = [() => {
    for (const pool of upstreams.values()) if (!given.has(pool)) pool.close()
  }]
  try {
    if (options.upstreams instanceof Map) {
      for (const [k, v] of options.upstreams) {
        upstreams.set(k, v)
        given.add(v)
      }
    }
    else if (options.upstreams) compileUpstreams(new ConfigReader(options.upstreams, ['upstreams'], NO_SOURCE), upstreams, clock, options.events)
    if (root.has('upstreams')) compileUpstreams(root.child('upstreams', true), upstreams, clock, options.events)

    const base = { upstreams, clock, events: options.events, endpoint: options.endpoint, disposables, fetch: options.fetch ?? fetch }
    const requestRules = tcp ? [] : compileRules(root, 'on_http_request', { ...base, phase: 'on_http_request' }, keys.on_http_request)
    const responseRules = tcp ? [] : compileRules(root, 'on_http_response', { ...base, phase: 'on_http_response' }, keys.on_http_response)
    const eventRules = tcp ? [] : compileRules(root, 'on_event_stream_message', { ...base, phase: 'on_event_stream_message' })
    const tcpRules = tcp ? compileRules(root, 'on_tcp_connect', { ...base, phase: 'on_tcp_connect' }) : []
    root.done()
    return createCompiledPolicy(requestRules, responseRules, eventRules, tcpRules, upstreams, disposables, clock, options.endpoint ?? '', terminateTls)
  } catch (err) {
    for (const d of disposables) void d()
    throw err
  }
}

/** The longest event-stream message on_event_stream_message rules read, in characters. */
const SSE_MESSAGE_LIMIT = 1024 * 1024

function createCompiledPolicy(
  requestRules: CompiledRule[],
  responseRules: CompiledRule[],
  eventRules: CompiledRule[],
  tcpRules: CompiledRule[],
  upstreams: Map<string, UpstreamPool>,
  disposables: Array<() => void | Promise<void>>,
  clock: () => number,
  endpointName: string,
  terminateTls: TerminateTlsRequest | undefined,
): CompiledPolicy {
  function requestOutcome(t: Terminal | undefined, state: PolicyState): RequestOutcome {
    if (!t) return { kind: 'forward', upstream: state.upstream }
    if (t.kind === 'forward') return { kind: 'forward', upstream: t.upstream }
    if (t.kind === 'internal') return { kind: 'internal', host: t.host }
    const response = terminalToResponse(t)
    const verdict = { action: state.currentAction, rule: state.currentRule, status: t.status }
    return t.errorCode ? { kind: 'respond', response, verdict, errorCode: t.errorCode } : { kind: 'respond', response, verdict }
  }

  function responseOutcome(t: Terminal | undefined, state: PolicyState): PolicyResponse {
    const current = state.response!
    if (!t || t.kind !== 'respond') return current
    // A terminating action replaced the upstream's answer: let the upstream body go.
    current.body.resume()
    const replaced = terminalToResponse(t)
    state.response = replaced
    return replaced
  }

  /**
   * With on_event_stream_message rules, a text/event-stream response's body is cut into
   * messages and each one runs the phase as it streams (sse.ts). Content-Length goes:
   * the messages may change length.
   */
  function withEventStream(state: PolicyState): PolicyResponse {
    const res = state.response!
    if (eventRules.length === 0) return res
    const type = getHeader(res.rawHeaders, 'content-type')?.split(';')[0]!.trim().toLowerCase()
    const encoding = getHeader(res.rawHeaders, 'content-encoding')
    if (type !== 'text/event-stream' || (encoding !== undefined && encoding !== 'identity')) return res
    const transform = createSseTransform((message) => {
      state.sseMessage = message
      const result = runRules(eventRules, state)
      return isPromise(result) ? result.then(() => undefined) : undefined
    }, SSE_MESSAGE_LIMIT)
    const source = res.body
    source.once('error', (err) => transform.destroy(err))
    res.body = source.pipe(transform)
    removeHeaders(res.rawHeaders, CONTENT_LENGTH)
    return res
  }

  return {
    empty: requestRules.length === 0 && responseRules.length === 0 && eventRules.length === 0 && tcpRules.length === 0,
    hasResponseRules: responseRules.length > 0 || eventRules.length > 0,
    hasTcpRules: tcpRules.length > 0,
    hasRequestRules: requestRules.length > 0,
    terminateTls,
    upstreams,
    async onHttpRequest(req, state) {
      state.request = req
      state.root = new EvalRoot(req, state, clock, endpointName)
      const result = runRules(requestRules, state)
      return requestOutcome(isPromise<Terminal | undefined>(result) ? await result : result, state)
    },
    async onHttpResponse(req, res, state) {
      state.request = req
      state.response = res
      state.root ??= new EvalRoot(req, state, clock, endpointName)
      if (state.responseHooks) {
        for (const hook of state.responseHooks) {
          const r = hook(state)
          if (isPromise(r)) await r
        }
      }
      if (responseRules.length > 0) {
        const result = runRules(responseRules, state)
        responseOutcome(isPromise<Terminal | undefined>(result) ? await result : result, state)
      }
      return withEventStream(state)
    },
    async onTcpConnect(req, state) {
      state.request = req
      state.root = new EvalRoot(req, state, clock, endpointName)
      const result = runRules(tcpRules, state)
      const t = isPromise<Terminal | undefined>(result) ? await result : result
      if (t?.kind === 'internal') return { action: state.currentAction, rule: state.currentRule, internal: t.host }
      // Any other terminating action ends the connection: there is no response to send on raw TCP.
      if (t?.kind !== 'respond') return undefined
      return t.errorCode ? { action: state.currentAction, rule: state.currentRule, errorCode: t.errorCode } : { action: state.currentAction, rule: state.currentRule }
    },
    async close() {
      for (const d of disposables.splice(0)) await d()
    },
  }
}
