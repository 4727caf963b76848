/**
 * on_tcp_connect for a tcp or tls endpoint: the connection, as the policy sees it. In
 * ngrok's phase a connection has only `conn.*` (client address and port, `conn.ts.start`),
 * `endpoint.*` and `time.*`; there is no request, so `req.*` reads as empty.
 */
import { Readable } from 'node:stream'
import type { TcpHead } from '@gw/protocol'
import { createPolicyState, type PolicyRequest, type TcpVerdict, type TlsTermination } from '../policy/index.js'
import type { AgentRuntime, EndpointRuntime } from './request-context.js'

/**
 * `verdict` undefined: let the connection through; a verdict: close it, or (`internal`)
 * hand it to that internal endpoint. `tls`: terminate-tls ran, end the client's TLS first.
 */
export async function runTcpConnect(endpoint: EndpointRuntime, head: TcpHead, runtime?: AgentRuntime): Promise<{ verdict: TcpVerdict | undefined; tls: TlsTermination | undefined }> {
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
  const state = createPolicyState()
  // forward-internal asks whether its target is online: this agent's, or another agent's of the token on the relay.
  if (runtime) state.internalEndpoint = (target) => runtime.rawInternalEndpoint?.(target) !== undefined || runtime.hasRemoteRawInternal?.(target) === true
  const verdict = await endpoint.policy!.onTcpConnect(request, state)
  return { verdict, tls: state.terminateTls }
}

/** `tcp://127.0.0.1:20001` → `127.0.0.1:20001`. */
function hostOf(url: string | undefined): string | undefined {
  const m = url ? /^[a-z]+:\/\/([^/]+)/.exec(url) : null
  return m?.[1]
}
