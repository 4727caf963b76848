/**
 * on_tcp_connect for a tcp or tls endpoint: the connection, as the policy sees it. In
 * ngrok's phase a connection has only `conn.*` (client address and port, `conn.ts.start`),
 * `endpoint.*` and `time.*`; there is no request, so `req.*` reads as empty.
 */
import { Readable } from 'node:stream'
import type { TcpHead } from '@gw/protocol'
import { createPolicyState, type PolicyRequest, type TcpVerdict } from '../policy/index.js'
import type { EndpointRuntime } from './request-context.js'

/** Undefined: let the connection through; a verdict: close it. */
export function runTcpConnect(endpoint: EndpointRuntime, head: TcpHead): Promise<TcpVerdict | undefined> {
  const request: PolicyRequest = {
    method: '',
    target: '/',
    rawHeaders: [],
    host: hostOf(endpoint.publicUrl) ?? (head.proto === 'tls' ? head.serverName ?? endpoint.publicName : `localhost:${head.serverPort}`),
    scheme: head.proto,
    clientIp: head.remoteAddress,
    clientPort: head.remotePort,
    receivedAt: head.connectedAt,
    connectedAt: head.connectedAt,
    body: Readable.from([]),
  }
  return endpoint.policy!.onTcpConnect(request, createPolicyState())
}

/** `tcp://127.0.0.1:20001` → `127.0.0.1:20001`. */
function hostOf(url: string | undefined): string | undefined {
  const m = url ? /^[a-z]+:\/\/([^/]+)/.exec(url) : null
  return m?.[1]
}
