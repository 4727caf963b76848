/**
 * Shared by the inspect, api and tui tests: exchanges driven through a real
 * `AgentEvents` exactly in the order the agent emits them, a plain HTTP client that can
 * set any Host, and a small stand-in agent (a real proxy to a real upstream) for tests
 * that need real traffic before the lead's agent is wired in.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AgentEvents, type AgentStatus, type Exchange, type TunnelInfo } from '@gw/cli/agent/events'
import type { ReplayRequest } from '@gw/cli/inspect/replay'

let counter = 0

export interface FakeExchange {
  id?: string
  tunnel?: string
  method?: string
  target?: string
  rawHeaders?: string[]
  requestBody?: Buffer | string
  status?: number
  statusMessage?: string
  responseHeaders?: string[]
  responseBody?: Buffer | string
  scheme?: 'http' | 'https'
  replayOf?: string
  verdict?: Exchange['verdict']
  websocket?: Exchange['websocket']
  /** Leave the exchange open after the response head. */
  open?: boolean
  at?: number
  durationMs?: number
}

export function startExchange(events: AgentEvents, spec: FakeExchange = {}): Exchange {
  const at = spec.at ?? Date.now()
  const exchange: Exchange = {
    id: spec.id ?? `req_${++counter}_${Math.random().toString(36).slice(2, 8)}`,
    tunnel: spec.tunnel ?? 'command_line',
    replayOf: spec.replayOf,
    request: {
      method: spec.method ?? 'GET',
      target: spec.target ?? '/',
      httpVersion: '1.1',
      rawHeaders: spec.rawHeaders ?? ['Host', 'demo.localhost', 'User-Agent', 'test'],
      remoteAddress: '127.0.0.1',
      remotePort: 50000,
      scheme: spec.scheme ?? 'https',
    },
    response: undefined,
    timing: { relayReceivedAt: at - 1, agentReceivedAt: at, upstreamStartAt: undefined, upstreamHeadersAt: undefined, endAt: undefined },
    bytesIn: 0,
    bytesOut: 0,
    error: undefined,
    verdict: spec.verdict,
    websocket: spec.websocket,
  }
  events.emit('exchange:start', exchange)
  return exchange
}

/** Emits a whole exchange: start, request body, response, response body, end. */
export function simulateExchange(events: AgentEvents, spec: FakeExchange = {}): Exchange {
  const exchange = startExchange(events, spec)
  const at = exchange.timing.agentReceivedAt
  const duration = spec.durationMs ?? 12
  const reqBody = spec.requestBody === undefined ? undefined : Buffer.from(spec.requestBody)
  if (reqBody !== undefined && reqBody.length > 0) {
    exchange.bytesIn += reqBody.length
    events.emit('exchange:request-body', exchange, reqBody)
  }
  exchange.timing.upstreamStartAt = at + 1
  exchange.timing.upstreamHeadersAt = at + duration - 1
  exchange.response = {
    status: spec.status ?? 200,
    statusMessage: spec.statusMessage ?? http.STATUS_CODES[spec.status ?? 200] ?? '',
    rawHeaders: spec.responseHeaders ?? ['Content-Type', 'text/plain'],
  }
  events.emit('exchange:response', exchange)
  const resBody = spec.responseBody === undefined ? undefined : Buffer.from(spec.responseBody)
  if (resBody !== undefined && resBody.length > 0) {
    exchange.bytesOut += resBody.length
    events.emit('exchange:response-body', exchange, resBody)
  }
  if (!spec.open) endExchange(events, exchange, at + duration)
  return exchange
}

export function endExchange(events: AgentEvents, exchange: Exchange, at = Date.now()): void {
  exchange.timing.endAt = at
  events.emit('exchange:end', exchange)
}

export function tunnelInfo(over: Partial<TunnelInfo> = {}): TunnelInfo {
  return {
    name: 'command_line',
    publicName: 'demo',
    publicUrl: 'https://demo.localhost:8443',
    publicUrls: ['http://demo.localhost:8080', 'https://demo.localhost:8443'],
    upstream: 'http://localhost:3000',
    upstreamProtocol: 'http1',
    inspect: true,
    ...over,
  }
}

export function agentStatus(over: Partial<AgentStatus> = {}): AgentStatus {
  return {
    status: 'online',
    relay: 'wss://relay.example:443',
    embedded: false,
    attempt: 0,
    latencyMs: 23.4,
    lastError: undefined,
    tunnels: [tunnelInfo()],
    version: '0.1.0',
    ...over,
  }
}

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  json(): any
}

/** node:http, because fetch will not let a test set Host. */
export function call(
  port: number,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer; host?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: { Host: options.host ?? `127.0.0.1:${port}`, ...options.headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const body = Buffer.concat(chunks)
          resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) })
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

export async function listen(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}

export interface UpstreamHit {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
}

/** A real upstream that records every request and answers JSON. */
export async function startUpstream(): Promise<{ port: number; hits: UpstreamHit[]; close(): Promise<void> }> {
  const hits: UpstreamHit[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      hits.push({ method: req.method!, url: req.url!, headers: req.headers, body })
      const text = JSON.stringify({ ok: true, method: req.method, url: req.url, hit: hits.length })
      res.writeHead(req.url?.startsWith('/missing') ? 404 : 200, { 'Content-Type': 'application/json' })
      res.end(text)
    })
  })
  const port = await listen(server)
  return {
    port,
    hits,
    close: () => new Promise((r) => {
      server.close(() => r())
      server.closeAllConnections()
    }),
  }
}

/**
 * A stand-in for the agent's request path: a real HTTP proxy in front of `upstreamPort`
 * that emits the agent's events, and a replay function that goes straight to the
 * upstream and emits them with `replayOf`, as the agent's does.
 */
export async function startMiniAgent(upstreamPort: number): Promise<{
  events: AgentEvents
  port: number
  replay: (request: ReplayRequest, replayOf: string, tunnel: string) => Promise<void>
  close(): Promise<void>
}> {
  const events = new AgentEvents()
  let ids = 0

  function forward(spec: { method: string; target: string; rawHeaders: string[]; body: Buffer; replayOf?: string; remotePort: number }): Promise<{ status: number; rawHeaders: string[]; body: Buffer }> {
    const now = Date.now()
    const exchange: Exchange = {
      id: `mini_${++ids}`,
      tunnel: 'command_line',
      replayOf: spec.replayOf,
      request: { method: spec.method, target: spec.target, httpVersion: '1.1', rawHeaders: spec.rawHeaders, remoteAddress: '127.0.0.1', remotePort: spec.remotePort, scheme: 'http' },
      response: undefined,
      timing: { relayReceivedAt: now, agentReceivedAt: now, upstreamStartAt: undefined, upstreamHeadersAt: undefined, endAt: undefined },
      bytesIn: spec.body.length,
      bytesOut: 0,
      error: undefined,
      verdict: undefined,
      websocket: undefined,
    }
    events.emit('exchange:start', exchange)
    if (spec.body.length > 0) events.emit('exchange:request-body', exchange, spec.body)
    return new Promise((resolve, reject) => {
      const headers: [string, string][] = []
      for (let i = 0; i < spec.rawHeaders.length; i += 2) {
        const name = spec.rawHeaders[i]!.toLowerCase()
        if (name === 'host' || name === 'connection' || name === 'transfer-encoding') continue
        headers.push([spec.rawHeaders[i]!, spec.rawHeaders[i + 1]!])
      }
      exchange.timing.upstreamStartAt = Date.now()
      const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: spec.method, path: spec.target, headers: Object.fromEntries(headers), agent: false }, (res) => {
        exchange.timing.upstreamHeadersAt = Date.now()
        exchange.response = { status: res.statusCode!, statusMessage: res.statusMessage ?? '', rawHeaders: res.rawHeaders }
        events.emit('exchange:response', exchange)
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => {
          chunks.push(c)
          exchange.bytesOut += c.length
          events.emit('exchange:response-body', exchange, c)
        })
        res.on('end', () => {
          exchange.timing.endAt = Date.now()
          events.emit('exchange:end', exchange)
          resolve({ status: res.statusCode!, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) })
        })
      })
      up.on('error', reject)
      up.end(spec.body)
    })
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      forward({ method: req.method!, target: req.url!, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks), remotePort: req.socket.remotePort ?? 0 }).then(
        (answer) => {
          const headers: string[] = []
          for (let i = 0; i < answer.rawHeaders.length; i += 2) {
            const name = answer.rawHeaders[i]!.toLowerCase()
            if (name === 'connection' || name === 'transfer-encoding' || name === 'keep-alive') continue
            headers.push(answer.rawHeaders[i]!, answer.rawHeaders[i + 1]!)
          }
          res.writeHead(answer.status, headers)
          res.end(answer.body)
        },
        () => {
          res.writeHead(502)
          res.end()
        },
      )
    })
  })
  const port = await listen(server)
  return {
    events,
    port,
    replay: async (request, replayOf) => {
      await forward({ ...request, replayOf, remotePort: 0 })
    },
    close: () => new Promise((r) => {
      server.close(() => r())
      server.closeAllConnections()
    }),
  }
}
