/**
 * The live feed of the web inspector: Server-Sent Events at
 * `GET /api/requests/http/events`.
 *
 * Under load the feed sends batches, not one event per request: changes are gathered
 * and flushed at most every `intervalMs` (100 ms, so 10 writes a second whatever the
 * request rate), and one payload is built per flush and shared by every open page.
 *
 * Events:
 * - `snapshot` (on connect): `{requests: [summary…]}`, newest first;
 * - `requests`: `{upsert: [summary…], remove: [id…]}`; an upserted id replaces the row;
 * - `clear`: the capture was cleared;
 * - `status`: `{status, relay, attempt, latency_ms, last_error, version, tunnels}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AgentEvents, AgentStatus } from '../agent/events.js'
import type { Capture, CaptureRecord } from '../inspect/capture.js'
import { requestSummary } from './request-json.js'
import type { TunnelEntry } from './tunnels-json.js'

export interface RequestEventStream {
  attach(req: IncomingMessage, res: ServerResponse): void
  close(): void
}

const SNAPSHOT_LIMIT = 500
const HEARTBEAT_MS = 15_000

export function createRequestEventStream(options: {
  capture: Capture
  events: AgentEvents
  getStatus: () => AgentStatus
  entries: () => TunnelEntry[]
  intervalMs?: number
}): RequestEventStream {
  const { capture, events } = options
  const intervalMs = options.intervalMs ?? 100
  const clients = new Set<ServerResponse>()
  let upserts = new Map<string, CaptureRecord>()
  let removes = new Set<string>()
  let cleared = false
  /** The status the agent last emitted; sent as is rather than asked for again. */
  let latestStatus: AgentStatus | undefined
  let timer: NodeJS.Timeout | undefined

  function send(payload: string): void {
    for (const res of clients) res.write(payload)
  }

  function flush(): void {
    timer = undefined
    if (clients.size === 0) return reset()
    let payload = ''
    if (cleared) payload += 'event: clear\ndata: {}\n\n'
    if (upserts.size > 0 || removes.size > 0) {
      const entries = options.entries()
      const body = {
        upsert: [...upserts.values()].map((r) => requestSummary(r, entries)),
        remove: [...removes],
      }
      payload += `event: requests\ndata: ${JSON.stringify(body)}\n\n`
    }
    if (latestStatus !== undefined) payload += `event: status\ndata: ${JSON.stringify(statusBody(latestStatus))}\n\n`
    reset()
    if (payload !== '') send(payload)
  }

  function reset(): void {
    upserts = new Map()
    removes = new Set()
    cleared = false
    latestStatus = undefined
  }

  function schedule(): void {
    if (clients.size === 0) return
    timer ??= setTimeout(flush, intervalMs)
  }

  // With no page open nothing is gathered: a page that connects starts from a snapshot.
  const onUpsert = (record: CaptureRecord): void => {
    if (clients.size === 0) return
    upserts.set(record.id, record)
    removes.delete(record.id)
    schedule()
  }
  const onRemove = (id: string): void => {
    if (clients.size === 0) return
    if (!upserts.delete(id)) removes.add(id)
    schedule()
  }
  const onClear = (): void => {
    if (clients.size === 0) return
    const status = latestStatus
    reset()
    latestStatus = status
    cleared = true
    schedule()
  }
  const onStatus = (status: AgentStatus): void => {
    if (clients.size === 0) return
    latestStatus = status
    schedule()
  }
  capture.changes.on('add', onUpsert)
  capture.changes.on('update', onUpsert)
  capture.changes.on('remove', onRemove)
  capture.changes.on('clear', onClear)
  events.on('status', onStatus)

  const heartbeat = setInterval(() => send(': keepalive\n\n'), HEARTBEAT_MS)
  heartbeat.unref()

  return {
    attach(req, res) {
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        'X-Content-Type-Options': 'nosniff',
        'X-Accel-Buffering': 'no',
      })
      const entries = options.entries()
      const snapshot = capture.list({ limit: SNAPSHOT_LIMIT }).map((r) => requestSummary(r, entries))
      res.write('retry: 1000\n\n')
      res.write(`event: snapshot\ndata: ${JSON.stringify({ requests: snapshot, capture: capture.enabled })}\n\n`)
      res.write(`event: status\ndata: ${JSON.stringify(statusBody(options.getStatus()))}\n\n`)
      clients.add(res)
      const drop = (): void => {
        clients.delete(res)
      }
      req.on('close', drop)
      res.on('close', drop)
    },
    close() {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      clearInterval(heartbeat)
      capture.changes.off('add', onUpsert)
      capture.changes.off('update', onUpsert)
      capture.changes.off('remove', onRemove)
      capture.changes.off('clear', onClear)
      events.off('status', onStatus)
      for (const res of clients) res.end()
      clients.clear()
    },
  }
}

function statusBody(status: AgentStatus): object {
  return {
    status: status.status,
    relay: status.relay,
    attempt: status.attempt,
    latency_ms: status.latencyMs ?? null,
    last_error: status.lastError ?? null,
    version: status.version,
    tunnels: status.tunnels.map((t) => ({ name: t.name, public_url: t.publicUrl, public_urls: t.publicUrls, upstream: t.upstream })),
  }
}
