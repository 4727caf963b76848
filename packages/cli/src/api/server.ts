/**
 * The agent API on 127.0.0.1:4040: ngrok's endpoints and shapes, the SSE feed and the
 * web inspector page.
 *
 * It has no authentication, like ngrok's, so three rules keep web pages out of it:
 * - only Host `127.0.0.1`, `localhost` or `[::1]` (bare or with our port) is answered,
 *   anything else gets 403. A DNS-rebinding page reaches us under its own name, so
 *   its requests carry that name in Host;
 * - no CORS headers at all, so other origins cannot read answers, and an `Origin` that
 *   is not ours is refused outright;
 * - calls that change state with a body (POST) need `Content-Type: application/json`,
 *   which a cross-site form cannot send and a cross-site fetch cannot send without a
 *   preflight we never approve. DELETE takes no body and needs no type, as in ngrok
 *   (`curl -X DELETE 127.0.0.1:4040/api/requests/http`): no form can send it, and a
 *   cross-site fetch of it always needs that same preflight.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { allEndpoints, type AgentEvents, type AgentStatus } from '../agent/events.js'
import type { Capture } from '../inspect/capture.js'
import { InspectError, InspectErrorCodes, type InspectErrorCode } from '../inspect/errors.js'
import type { Metrics } from '../inspect/metrics.js'
import { parseModifications, replayCaptured, type ReplayFn } from '../inspect/replay.js'
import { INSPECTOR_CSS } from '../web/styles.js'
import { INSPECTOR_HTML } from '../web/page.js'
import { INSPECTOR_JS } from '../web/client-script.js'
import { createRequestEventStream } from './event-stream.js'
import { listenApi } from './listen.js'
import { requestJson } from './request-json.js'
import { apiTunnelName, endpointJson, statusJson, tunnelEntries, tunnelJson, tunnelsJson } from './tunnels-json.js'
import { endpointBody, tunnelBody, type TunnelControl } from './tunnel-control.js'
import { CodedError } from '@gw/protocol'

export interface AgentApiOptions {
  /** `host:port`; default 127.0.0.1:4040, moving to 4041… when taken. */
  addr?: string
  getStatus: () => AgentStatus
  capture: Capture
  metrics: Metrics
  events: AgentEvents
  replay: ReplayFn
  /** Starts and stops tunnels for POST/DELETE /api/tunnels and /api/endpoints; without it they answer 405. */
  tunnels?: TunnelControl
}

export interface AgentApi {
  /** e.g. `http://127.0.0.1:4040` */
  url: string
  port: number
  close(): Promise<void>
}

const DEFAULT_LIMIT = 50
/** A replay with a modified body is the biggest thing anyone posts here. */
const MAX_BODY = 32 * 1024 * 1024
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]'])

/** `Host` (or an Origin's host part) is one of ours, bare or with our port. */
export function isLocalHost(host: string | undefined, port: number, alsoAllowed?: string): boolean {
  if (host === undefined) return false
  const m = /^(\[[^\]]*\]|[^:]+)(?::(\d+))?$/.exec(host.trim().toLowerCase())
  if (m === null) return false
  const name = m[1]!
  return (LOCAL_HOSTS.has(name) || name === alsoAllowed) && (m[2] === undefined || Number(m[2]) === port)
}

function isJson(req: IncomingMessage): boolean {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  return type === 'application/json'
}

const BASE_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...BASE_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function sendError(res: ServerResponse, code: InspectErrorCode, message?: string, extraHeaders?: Record<string, string>): void {
  const status = InspectErrorCodes[code].status
  if (extraHeaders) for (const [k, v] of Object.entries(extraHeaders)) res.setHeader(k, v)
  // ngrok's error shape, with gw's stable string code.
  sendJson(res, status, { error_code: code, status_code: status, msg: message ?? InspectErrorCodes[code].message, details: {} })
}

function sendAsset(res: ServerResponse, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(200, { ...BASE_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...extra })
  res.end(body)
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY) throw new InspectError('GW_ERR_API_BODY_TOO_LARGE', `the agent API accepts bodies up to ${MAX_BODY} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readBody(req)
  if (body.length === 0) return {}
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    throw new InspectError('GW_ERR_API_BAD_REQUEST', 'the request body is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InspectError('GW_ERR_API_BAD_REQUEST', 'the request body must be a JSON object')
  }
  return value as Record<string, unknown>
}

/**
 * @example
 * const api = await startAgentApi({ getStatus, capture, metrics, events, replay })
 * console.log(`inspector: ${api.url}`)
 */
export async function startAgentApi(options: AgentApiOptions): Promise<AgentApi> {
  const { capture, metrics, events, getStatus, replay } = options
  const entries = () => tunnelEntries(getStatus())
  const stream = createRequestEventStream({ capture, events, getStatus, entries })
  let port = 0
  /** An address the user chose (a LAN IP) is answered too; a wildcard is not a name. */
  let boundHost: string | undefined

  const html = INSPECTOR_HTML
  const csp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!isLocalHost(req.headers.host, port, boundHost)) {
      return sendError(res, 'GW_ERR_API_FORBIDDEN_HOST', `Host ${JSON.stringify(req.headers.host ?? '')} is not allowed; use 127.0.0.1, localhost or [::1]`)
    }
    const origin = req.headers.origin
    if (origin !== undefined && origin !== 'null') {
      let originHost: string | undefined
      try {
        originHost = new URL(origin).host
      } catch {
        originHost = undefined
      }
      if (!isLocalHost(originHost, port, boundHost)) return sendError(res, 'GW_ERR_API_FORBIDDEN_ORIGIN')
    } else if (origin === 'null') return sendError(res, 'GW_ERR_API_FORBIDDEN_ORIGIN')

    const url = new URL(req.url ?? '/', 'http://localhost')
    const path = url.pathname.replace(/\/+$/, '') || '/'
    const method = req.method === 'HEAD' ? 'GET' : req.method
    const segments = path.split('/').slice(1).map((s) => decodeURIComponent(s))

    const allow = (methods: string): boolean => {
      if (methods.split(',').includes(method ?? '')) return true
      sendError(res, 'GW_ERR_API_METHOD_NOT_ALLOWED', undefined, { Allow: methods })
      return false
    }
    const needJson = (): boolean => {
      if (isJson(req)) return true
      sendError(res, 'GW_ERR_API_UNSUPPORTED_MEDIA_TYPE')
      return false
    }

    if (path === '/') {
      if (!allow('GET')) return
      res.writeHead(302, { ...BASE_HEADERS, Location: '/inspect/http' })
      return void res.end()
    }
    if (path === '/inspect/http') {
      if (!allow('GET')) return
      return sendAsset(res, 'text/html; charset=utf-8', html, { 'Content-Security-Policy': csp })
    }
    if (path === '/inspect/app.js') return allow('GET') ? sendAsset(res, 'text/javascript; charset=utf-8', INSPECTOR_JS) : undefined
    if (path === '/inspect/app.css') return allow('GET') ? sendAsset(res, 'text/css; charset=utf-8', INSPECTOR_CSS) : undefined

    if (path === '/api') {
      if (!allow('GET')) return
      return sendJson(res, 200, {
        uri: '/api',
        tunnels: '/api/tunnels',
        endpoints: '/api/endpoints',
        requests: '/api/requests/http',
        events: '/api/requests/http/events',
        status: '/api/status',
        inspector: '/inspect/http',
      })
    }
    const control = options.tunnels
    const changes = control ? 'GET,POST' : 'GET'
    if (path === '/api/tunnels') {
      if (!allow(changes)) return
      if (method === 'GET') return sendJson(res, 200, tunnelsJson(getStatus(), metrics))
      if (!needJson()) return
      const info = await control!.start(tunnelBody(await readJson(req)), 'POST /api/tunnels')
      // ngrok answers with the tunnel's first entry: https when the relay has TLS.
      const entry = entries().find((e) => e.info.name === info.name)
      return sendJson(res, 201, entry ? tunnelJson(entry, metrics) : {})
    }
    if (segments[0] === 'api' && segments[1] === 'tunnels' && segments.length === 3) {
      if (!allow(control ? 'GET,DELETE' : 'GET')) return
      const entry = entries().find((e) => e.apiName === segments[2])
      if (entry === undefined) return sendError(res, 'GW_ERR_TUNNEL_UNKNOWN', `no tunnel is named ${JSON.stringify(segments[2])}`)
      if (method === 'GET') return sendJson(res, 200, tunnelJson(entry, metrics))
      // A DELETE needs no Content-Type: no form can send one, and a cross-site fetch
      // needs a preflight we never approve.
      await readBody(req)
      await control!.stop(entry.info.name)
      res.writeHead(204, BASE_HEADERS)
      return void res.end()
    }
    if (path === '/api/endpoints') {
      if (!allow(changes)) return
      if (method === 'GET') {
        const list = allEndpoints(getStatus()).map((t) => endpointJson(t, control?.meta(t.name)))
        return sendJson(res, 200, { endpoints: list, uri: '/api/endpoints' })
      }
      if (!needJson()) return
      const info = await control!.start(endpointBody(await readJson(req), 'POST /api/endpoints'), 'POST /api/endpoints:')
      return sendJson(res, 201, endpointJson(info, control!.meta(info.name), metrics))
    }
    if (segments[0] === 'api' && segments[1] === 'endpoints' && segments.length === 3) {
      if (!allow(control ? 'GET,PUT,DELETE' : 'GET')) return
      const name = segments[2]!
      const info = allEndpoints(getStatus()).find((t) => t.name === name)
      if (method === 'GET' || method === 'DELETE') {
        if (info === undefined) return sendError(res, 'GW_ERR_TUNNEL_UNKNOWN', `no endpoint is named ${JSON.stringify(name)}`)
        if (method === 'GET') return sendJson(res, 200, endpointJson(info, control?.meta(name), metrics))
        await readBody(req)
        await control!.stop(name)
        res.writeHead(204, BASE_HEADERS)
        return void res.end()
      }
      if (!needJson()) return
      // ngrok's PUT: replace the endpoint, or create it when there is none.
      const endpoint = endpointBody(await readJson(req), `PUT /api/endpoints/${name}`, name)
      if (info !== undefined) await control!.stop(name)
      const started = await control!.start(endpoint, `PUT /api/endpoints/${name}:`)
      return sendJson(res, info === undefined ? 201 : 200, endpointJson(started, control!.meta(name), metrics))
    }
    if (path === '/api/status') {
      if (!allow('GET')) return
      return sendJson(res, 200, statusJson(getStatus(), metrics, capture))
    }
    if (path === '/api/requests/http') {
      if (!allow('GET,POST,DELETE')) return
      if (method === 'GET') {
        const limitText = url.searchParams.get('limit')
        const limit = limitText === null || limitText === '' ? DEFAULT_LIMIT : Number(limitText)
        if (!Number.isInteger(limit) || limit < 0) return sendError(res, 'GW_ERR_API_BAD_REQUEST', 'limit must be a whole number')
        const tunnelName = url.searchParams.get('tunnel_name') ?? undefined
        const list = entries()
        let records = capture.list()
        if (tunnelName !== undefined && tunnelName !== '') {
          // Exactly the tunnel_name each request is listed under, as ngrok filters:
          // `command_line` is the https entry, `command_line (http)` the http one.
          records = records.filter((r) => apiTunnelName(list, r.exchange.tunnel, r.exchange.request.scheme) === tunnelName)
        }
        return sendJson(res, 200, { requests: records.slice(0, limit).map((r) => requestJson(r, list)), uri: '/api/requests/http' })
      }
      if (method === 'DELETE') {
        await readBody(req)
        capture.clear()
        res.writeHead(204, BASE_HEADERS)
        return void res.end()
      }
      if (!needJson()) return
      const body = await readJson(req)
      if (typeof body.id !== 'string' || body.id === '') return sendError(res, 'GW_ERR_API_BAD_REQUEST', 'the body needs {"id": "<request id>"}')
      const mods = parseModifications(body.modifications)
      // ngrok's optional `tunnel_name`: replay against another tunnel's upstream.
      let tunnel: string | undefined
      if (body.tunnel_name !== undefined && body.tunnel_name !== null && body.tunnel_name !== '') {
        const entry = entries().find((e) => e.apiName === body.tunnel_name || e.info.name === body.tunnel_name)
        if (entry === undefined) return sendError(res, 'GW_ERR_TUNNEL_UNKNOWN', `no tunnel is named ${JSON.stringify(body.tunnel_name)}`)
        tunnel = entry.info.name
      }
      await replayCaptured(capture, replay, body.id, mods, tunnel)
      res.writeHead(204, BASE_HEADERS)
      return void res.end()
    }
    if (path === '/api/requests/http/events') {
      if (!allow('GET')) return
      return stream.attach(req, res)
    }
    if (segments[0] === 'api' && segments[1] === 'requests' && segments[2] === 'http' && segments.length === 4) {
      if (!allow('GET')) return
      const record = capture.get(segments[3]!)
      if (record === undefined) return sendError(res, 'GW_ERR_REQUEST_NOT_FOUND', `no captured request has id ${JSON.stringify(segments[3])}`)
      return sendJson(res, 200, requestJson(record, entries()))
    }
    return sendError(res, 'GW_ERR_API_NOT_FOUND', `no agent API resource at ${path}`)
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy()
      if (err instanceof InspectError) return sendError(res, err.code, err.message)
      // A tunnel the relay or the config check refused: its own code and status
      // (GW_ERR_NAME_TAKEN 409, GW_ERR_DOMAIN_NOT_SERVED 400…); a policy that does not compile is the caller's 400.
      if (err instanceof CodedError) {
        const status = err.code.startsWith('GW_ERR_POLICY_') ? 400 : err.status
        return sendJson(res, status, { error_code: err.code, status_code: status, msg: err.message, details: {} })
      }
      // Anything else is a bug in the agent API, not in the caller's request.
      sendError(res, 'GW_ERR_API_INTERNAL', `the agent API failed: ${err instanceof Error ? err.message : String(err)}`)
    })
  })
  // Keep-alive connections from browsers must not hold close() open.
  server.keepAliveTimeout = 5000

  const bound = await listenApi(server, options.addr)
  port = bound.port
  const wildcard = bound.host === '0.0.0.0' || bound.host === '::'
  const host = wildcard ? '127.0.0.1' : bound.host.includes(':') ? `[${bound.host}]` : bound.host
  boundHost = wildcard ? undefined : host.toLowerCase()

  return {
    url: `http://${host}:${port}`,
    port,
    close() {
      stream.close()
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}
