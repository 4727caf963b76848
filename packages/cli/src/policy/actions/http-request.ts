/**
 * `http-request`: the policy makes an HTTP call of its own and later rules read the
 * answer in `actions.ngrok.http_request.*`, as ngrok documents it.
 *
 * - A `https://<name>.internal` URL goes to that internal endpoint of this agent, through
 *   its traffic policy and upstream (the agent's internal-request.ts), as ngrok sends
 *   such requests to internal endpoints; any other http(s) URL is fetched.
 * - `url`, header values, query param values and `body` take `${…}`.
 * - `timeout` (default 3s, 1s–30s) bounds the whole action, redirects included;
 *   `max_redirects` (0–5, default 0) 3xx answers are followed, more fail the action.
 * - The answer's body is read up to 256 KB; more fails the action ("response size exceeded").
 * - `retry_condition`: a CEL expression over `attempts` (so far) and `last_attempt.req`,
 *   `.res` (absent when the attempt got no answer) and `.error` ('' when it got one),
 *   evaluated after each failed attempt (an error, or a status of 400 or more); true tries
 *   again, at most 3 more times, within the same `timeout`.
 * - `on_error: continue` (the default) records `error` and goes on; `halt` answers 502
 *   `GW_ERR_POLICY_HTTP_REQUEST_FAILED`.
 */
import { performance } from 'node:perf_hooks'
import { respondJson, type ActionDefinition } from '../action.js'
import { expressionAt, headerTemplates, templateAt } from '../compile-helpers.js'
import { ConfigReader } from '../config-reader.js'
import { headersToMap } from '../headers.js'
import { setActionResult, type InternalAnswer } from '../state.js'
import { evaluatesTrue, rootWith, type Template } from '../cel.js'
import { internalHostOf } from './forward-internal.js'

const METHODS = ['GET', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'] as const
const MAX_BODY = 256 * 1024
/** ngrok: "the request is retried (up to 3 times)". */
const MAX_RETRIES = 3
const RETRY_VARIABLES = { attempts: 'int', last_attempt: 'map<string, dyn>' }

interface Attempt {
  resolved_ip: string
  response_header: Record<string, string[]>
  response_status_code: number
  response_time_ms: string
}

class RequestFailed extends Error {
  constructor(readonly code: string, message: string) {
    super(message)
  }
}

export const httpRequest: ActionDefinition = {
  type: 'http-request',
  phases: ['on_http_request', 'on_http_response'],
  compile(config, ctx) {
    const urlText = config.template('url')
    const url = templateAt(config, config.at('url'), urlText)
    if (!urlText.includes('${')) {
      try {
        const u = new URL(urlText)
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme')
      } catch {
        config.fail('url', `must be an http(s) URL, such as https://api.internal/check, got ${JSON.stringify(urlText)}`)
      }
    }
    const method = config.oneOf('method', METHODS, 'GET')
    const query: Array<[Template, Template]> = config.list('query_params', false).map((item, i) => {
      const q = new ConfigReader(item, [...config.path, 'query_params', i], config.source, 'a query parameter ({key, value})')
      const key = q.template('key')
      const value = q.template('value')
      if (key.length > 128) q.fail('key', 'must be at most 128 characters')
      if (value.length > 8192) q.fail('value', 'must be at most 8192 characters')
      const pair: [Template, Template] = [templateAt(q, q.at('key'), key), templateAt(q, q.at('value'), value)]
      q.done()
      return pair
    })
    if (query.length > 32) config.fail('query_params', `must have at most 32 entries, got ${query.length}`)
    const headers = headerTemplates(config, 'headers', false)
    if (headers.length > 10) config.fail('headers', `must have at most 10 entries, got ${headers.length}`)
    const bodyText = config.optTemplate('body')
    const body = bodyText === undefined ? undefined : templateAt(config, config.at('body'), bodyText)
    const maxRedirects = config.int('max_redirects', 0, 0, 5)
    const timeoutMs = config.duration('timeout', 3_000, 1_000, 30_000)
    const retryText = config.has('retry_condition') ? config.string('retry_condition') : undefined
    const retry = retryText === undefined ? undefined : expressionAt(config, config.at('retry_condition'), retryText, true, RETRY_VARIABLES)
    const onError = config.oneOf('on_error', ['continue', 'halt'] as const, 'continue')
    config.done()

    return async function httpRequestAction(state) {
      const root = state.root!
      const target = new URL(url(root))
      for (const [k, v] of query) target.searchParams.append(k(root), v(root))
      const rawHeaders: string[] = []
      for (const [name, value] of headers) rawHeaders.push(name, value(root))
      const payload = body ? Buffer.from(body(root)) : Buffer.alloc(0)
      const reqVars = { method, header: headersToMap(rawHeaders), url: target.href, body: payload.toString() }
      const attempts: Attempt[] = []
      const signal = AbortSignal.timeout(timeoutMs)

      async function once(u: URL): Promise<{ answer: InternalAnswer; ip: string; ms: number }> {
        const started = performance.now()
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RequestFailed('GW_ERR_POLICY_HTTP_REQUEST_FAILED', `cannot request ${u.protocol} URLs`)
        const host = internalHostOf(u.href)
        if (host !== undefined) {
          if (!state.internalRequest || !state.internalEndpoint?.(host)) {
            throw new RequestFailed('GW_ERR_POLICY_INTERNAL_ENDPOINT_NOT_FOUND', `this agent has no internal endpoint ${host}`)
          }
          const withHost = ['host', state.request!.host, ...rawHeaders]
          if (payload.length > 0) withHost.push('content-length', String(payload.length))
          const answer = await state.internalRequest(host, { method, target: u.pathname + u.search, rawHeaders: withHost, body: payload }, MAX_BODY, signal)
          return { answer, ip: '', ms: performance.now() - started }
        }
        const res = await ctx.fetch(u, {
          method, headers: pairs(rawHeaders), redirect: 'manual', signal,
          ...(payload.length > 0 && method !== 'GET' ? { body: payload } : {}),
        })
        const reader = res.body?.getReader()
        const chunks: Buffer[] = []
        let size = 0
        while (reader) {
          const r = await reader.read()
          if (r.done) break
          size += r.value.length
          if (size > MAX_BODY) {
            await reader.cancel()
            throw new RequestFailed('GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE', `response size exceeded: the body is over ${MAX_BODY} bytes`)
          }
          chunks.push(Buffer.from(r.value))
        }
        const flat: string[] = []
        res.headers.forEach((v, k) => flat.push(k, v))
        return { answer: { status: res.status, rawHeaders: flat, body: Buffer.concat(chunks, size) }, ip: '', ms: performance.now() - started }
      }

      /** One attempt: the request and the redirects it is allowed to follow. */
      async function attempt(): Promise<{ answer: InternalAnswer; header: Record<string, string[]>; ip: string; ms: number }> {
        let current = target
        for (let hop = 0; ; hop++) {
          const { answer, ip, ms } = await once(current)
          const header = headersToMap(answer.rawHeaders)
          attempts.push({ resolved_ip: ip, response_header: header, response_status_code: answer.status, response_time_ms: String(Math.round(ms)) })
          const location = header['location']?.[0]
          if (answer.status >= 300 && answer.status < 400 && location) {
            if (hop >= maxRedirects) throw new RequestFailed('GW_ERR_POLICY_HTTP_REQUEST_FAILED', `more than ${maxRedirects} redirect${maxRedirects === 1 ? '' : 's'} (max_redirects)`)
            current = new URL(location, current)
            continue
          }
          return { answer, header, ip, ms }
        }
      }

      /** After a failed attempt: does the user's retry_condition ask for another? */
      function retryWanted(tries: number, res: Record<string, unknown> | undefined, error: string): boolean {
        if (retry === undefined || tries > MAX_RETRIES || signal.aborted) return false
        const last_attempt = { req: reqVars, error, ...(res ? { res } : {}) }
        return evaluatesTrue(retry, rootWith(root, { attempts: BigInt(tries), last_attempt }))
      }

      for (let tries = 1; ; tries++) {
        try {
          const { answer, header, ip, ms } = await attempt()
          const res = { resolved_ip: ip, header, status_code: answer.status, time_ms: String(Math.round(ms)), body: answer.body.toString() }
          // ngrok's own retry example reads last_attempt.res.statusCode.
          if (answer.status >= 400 && retryWanted(tries, { ...res, statusCode: answer.status }, '')) continue
          setActionResult(state, 'ngrok', 'http_request', { req: reqVars, attempts, res })
          return
        } catch (err) {
          const e = err as Error & { code?: string }
          const code = signal.aborted ? 'GW_ERR_POLICY_HTTP_REQUEST_FAILED' : e instanceof RequestFailed ? e.code : (typeof e.code === 'string' && e.code.startsWith('GW_ERR_') ? e.code : 'GW_ERR_POLICY_HTTP_REQUEST_FAILED')
          const message = signal.aborted ? `no answer within the timeout of ${timeoutMs} ms` : `${target.origin}: ${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ''}`
          if (retryWanted(tries, undefined, message)) continue
          setActionResult(state, 'ngrok', 'http_request', { req: reqVars, attempts, error: { code, message } })
          if (onError === 'halt') return respondJson(502, { error: 'GW_ERR_POLICY_HTTP_REQUEST_FAILED', message: `http-request failed: ${message}` }, [], 'GW_ERR_POLICY_HTTP_REQUEST_FAILED')
          return
        }
      }
    }
  },
}

function pairs(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!])
  return out
}
