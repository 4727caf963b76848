/**
 * A small real HTTP gateway around a compiled policy, standing in for the agent's
 * request handler in these tests: real sockets, the real engine, a real upstream
 * reached with undici. It follows the contract documented in policy/index.ts and
 * upstream/pool.ts (pick/release, one retry for idempotent requests).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream/promises'
import { request } from 'undici'
import { createPolicyState, type CompiledPolicy, type PolicyRequest, type PolicyResponse } from '@gw/cli/policy/index'
import { createUpstreamPool, isIdempotentMethod, sendWithRetry, UpstreamPoolDownError } from '@gw/cli/upstream/index'

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer'])

export interface Gateway {
  url: string
  server: Server
  close(): Promise<void>
}

function writeResponse(res: ServerResponse, r: PolicyResponse): Promise<void> {
  const headers: string[] = []
  for (let i = 0; i < r.rawHeaders.length; i += 2) {
    if (!HOP.has(r.rawHeaders[i]!.toLowerCase())) headers.push(r.rawHeaders[i]!, r.rawHeaders[i + 1]!)
  }
  res.writeHead(r.status, headers)
  return pipeline(r.body, res)
}

export async function startGateway(policy: CompiledPolicy, defaultUpstream: string): Promise<Gateway> {
  const fallback = createUpstreamPool({ name: 'default', targets: [defaultUpstream] })
  const server = createServer((inc: IncomingMessage, res: ServerResponse) => {
    void handle(inc, res).catch((err: Error) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'gw-error-code': (err as { code?: string }).code ?? 'GW_ERR_UPSTREAM_FAILED' })
        res.end(err.message)
      } else res.destroy(err)
    })
  })
  async function handle(inc: IncomingMessage, res: ServerResponse): Promise<void> {
    const req: PolicyRequest = {
      method: inc.method!, target: inc.url!, rawHeaders: [...inc.rawHeaders], host: inc.headers.host ?? '',
      scheme: 'http', clientIp: inc.socket.remoteAddress!, clientPort: inc.socket.remotePort!, body: inc,
    }
    const state = createPolicyState()
    const outcome = await policy.onHttpRequest(req, state)
    if (outcome.kind === 'respond') {
      inc.resume()
      await writeResponse(res, outcome.response)
      return
    }
    const first = outcome.upstream
    const pool = first?.pool ?? fallback
    const hasBody = inc.headers['content-length'] !== undefined || inc.headers['transfer-encoding'] !== undefined
    const headers: string[] = []
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const n = req.rawHeaders[i]!.toLowerCase()
      if (!HOP.has(n) && n !== 'host') headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!)
    }
    let sent
    try {
      sent = await sendWithRetry(pool, isIdempotentMethod(req.method) && !hasBody, (t) =>
        request(`${t.origin}${t.basePath}${req.target}`, { method: req.method as 'GET', headers, body: hasBody ? req.body : undefined }), first)
    } catch (err) {
      const code = err instanceof UpstreamPoolDownError ? err.code : 'GW_ERR_UPSTREAM_REFUSED'
      const r = await policy.onHttpResponse(req, { status: 502, rawHeaders: ['gw-error-code', code], body: (await import('node:stream')).Readable.from([Buffer.from((err as Error).message)]) }, state)
      await writeResponse(res, r)
      return
    }
    const { target, value: up } = sent
    const raw: string[] = []
    for (const [k, v] of Object.entries(up.headers)) {
      if (Array.isArray(v)) for (const x of v) raw.push(k, x)
      else if (v !== undefined) raw.push(k, String(v))
    }
    const r = await policy.onHttpResponse(req, { status: up.statusCode, rawHeaders: raw, body: up.body }, state)
    try {
      await writeResponse(res, r)
      pool.release(target, 'ok')
    } catch (err) {
      pool.release(target, 'error')
      throw err
    }
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    server,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
      fallback.close()
      await policy.close()
    },
  }
}

/** An upstream that echoes what it received as JSON. */
export async function startEchoUpstream(tag = 'echo'): Promise<{ url: string; close(): Promise<void>; server: Server; hits: number }> {
  const state = { hits: 0 }
  const server = createServer((req, res) => {
    state.hits++
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ tag, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    get hits() {
      return state.hits
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}
