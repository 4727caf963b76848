import { Readable } from 'node:stream'
import type { PolicyRequest, PolicyResponse } from '@gw/cli/policy/index'

export function makeRequest(init: Partial<Omit<PolicyRequest, 'body'>> & { body?: string | Buffer | Readable; headers?: Record<string, string> } = {}): PolicyRequest {
  const rawHeaders = init.rawHeaders ?? []
  if (init.headers) for (const [k, v] of Object.entries(init.headers)) rawHeaders.push(k, v)
  const body = init.body instanceof Readable ? init.body : Readable.from(init.body === undefined ? [] : [Buffer.from(init.body)])
  return {
    method: init.method ?? 'GET',
    target: init.target ?? '/',
    rawHeaders,
    host: init.host ?? 'demo.gw.test',
    scheme: init.scheme ?? 'https',
    clientIp: init.clientIp ?? '203.0.113.7',
    clientPort: init.clientPort ?? 51000,
    receivedAt: init.receivedAt ?? Date.now(),
    ...(init.connectedAt !== undefined ? { connectedAt: init.connectedAt } : {}),
    body,
  }
}

export function makeResponse(status: number, headers: Record<string, string> = {}, body: string | Buffer | Readable = ''): PolicyResponse {
  const rawHeaders: string[] = []
  for (const [k, v] of Object.entries(headers)) rawHeaders.push(k, v)
  return { status, rawHeaders, body: body instanceof Readable ? body : Readable.from([Buffer.from(body)]) }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string))
  return Buffer.concat(chunks)
}

export function header(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1]
  return undefined
}

export function headerAll(raw: readonly string[], name: string): string[] {
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!)
  return out
}
