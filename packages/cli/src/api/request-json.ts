/**
 * Captured requests in ngrok's `/api/requests/http` shape:
 * `{uri, id, tunnel_name, remote_addr, start, duration (ns), request:{method, proto,
 * headers, uri, raw}, response:{status, status_code, proto, headers, raw} | null}`.
 *
 * gw's extras (replay mark, policy verdict, timing split, truncation, WebSocket counts)
 * go under one `gw` key, so nothing in ngrok's shape changes meaning.
 */
import type { CaptureRecord } from '../inspect/capture.js'
import { headerMap, pathOf, rawRequest, rawResponse, statusText } from '../inspect/http-text.js'
import { timingSplit } from '../inspect/timing.js'
import { apiTunnelName, type TunnelEntry } from './tunnels-json.js'

function durationNs(record: CaptureRecord): number {
  const t = record.exchange.timing
  return t.endAt === undefined ? 0 : Math.max(0, Math.round((t.endAt - t.agentReceivedAt) * 1e6))
}

function bodyInfo(body: CaptureRecord['requestBody']): object {
  return { size: body.size, captured: body.bytes.length, truncated: body.truncated }
}

function gwExtras(record: CaptureRecord): object {
  const ex = record.exchange
  const split = timingSplit(ex)
  return {
    state: record.state,
    seq: record.seq,
    tunnel: ex.tunnel,
    scheme: ex.request.scheme,
    replay_of: ex.replayOf ?? null,
    error: ex.error ?? null,
    verdict: ex.verdict ?? null,
    websocket: ex.websocket ? { messages_in: ex.websocket.messagesIn, messages_out: ex.websocket.messagesOut } : null,
    bytes_in: ex.bytesIn,
    bytes_out: ex.bytesOut,
    request_body: bodyInfo(record.requestBody),
    response_body: bodyInfo(record.responseBody),
    timing: {
      relay_received_at: new Date(ex.timing.relayReceivedAt).toISOString(),
      relay_to_agent_ms: split.relayToAgentMs ?? null,
      agent_to_upstream_ms: split.agentToUpstreamMs ?? null,
      upstream_ms: split.upstreamMs ?? null,
      transfer_ms: split.transferMs ?? null,
      total_ms: split.totalMs ?? null,
    },
  }
}

export function requestJson(record: CaptureRecord, entries: TunnelEntry[]): object {
  const ex = record.exchange
  const proto = `HTTP/${ex.request.httpVersion}`
  const res = ex.response
  return {
    uri: `/api/requests/http/${encodeURIComponent(record.id)}`,
    id: record.id,
    tunnel_name: apiTunnelName(entries, ex.tunnel, ex.request.scheme),
    remote_addr: ex.request.remoteAddress,
    start: new Date(ex.timing.agentReceivedAt).toISOString(),
    duration: durationNs(record),
    request: {
      method: ex.request.method,
      proto,
      headers: headerMap(ex.request.rawHeaders),
      uri: ex.request.target,
      raw: rawRequest(record).toString('base64'),
    },
    response:
      res === undefined
        ? null
        : {
            status: statusText(ex),
            status_code: res.status,
            proto,
            headers: headerMap(res.rawHeaders),
            raw: rawResponse(record)!.toString('base64'),
          },
    gw: gwExtras(record),
  }
}

/** The small form the event stream sends for the live list; details are fetched by id. */
export function requestSummary(record: CaptureRecord, entries: TunnelEntry[]): object {
  const ex = record.exchange
  const split = timingSplit(ex)
  return {
    id: record.id,
    seq: record.seq,
    state: record.state,
    tunnel_name: apiTunnelName(entries, ex.tunnel, ex.request.scheme),
    start: new Date(ex.timing.agentReceivedAt).toISOString(),
    method: ex.request.method,
    uri: ex.request.target,
    path: pathOf(ex.request.target),
    status_code: ex.response?.status ?? null,
    duration_ms: split.totalMs ?? null,
    size: record.responseBody.size,
    replay_of: ex.replayOf ?? null,
    verdict: ex.verdict ?? null,
    error: ex.error ?? null,
    websocket: ex.websocket ? { messages_in: ex.websocket.messagesIn, messages_out: ex.websocket.messagesOut } : null,
  }
}
