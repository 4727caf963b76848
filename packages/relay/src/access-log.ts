/**
 * The access log: one JSON line per finished request (`--access-log <path|->`).
 *
 * It holds no credentials: no header is logged, and the path is written without its
 * query string, which often carries tokens and signatures.
 *
 * A slow disk never holds up requests nor grows memory without bound: past
 * MAX_BUFFERED bytes waiting to be written, lines are dropped and counted.
 */
import { createWriteStream, type WriteStream } from 'node:fs'
import type { RelayEvents, RequestRecord } from './observe.js'

const MAX_BUFFERED = 4 * 1024 * 1024

/** `relay`: in a cluster, the id of the relay (the worker, with --workers) that took the request. */
export function accessLogLine(r: RequestRecord, relay?: string): string {
  const line: Record<string, unknown> = {
    time: new Date(r.start).toISOString(),
    request_id: r.id,
    name: r.name ?? null,
    method: r.method,
    path: r.path,
    status: r.status,
    bytes_in: r.bytesIn,
    bytes_out: r.bytesOut,
    duration_ms: Math.round(r.durationMs * 1000) / 1000,
    remote: r.remote,
    scheme: r.scheme,
    token: r.token ?? null,
  }
  if (r.errorCode) line.gw_error_code = r.errorCode
  if (r.cache) line.cache = r.cache
  if (relay !== undefined) line.relay = relay
  return `${JSON.stringify(line)}\n`
}

export interface AccessLog {
  /** Lines dropped because the destination could not keep up. */
  readonly dropped: number
  /** Open the file again (after logrotate moved it); SIGHUP does this. */
  reopen(): void
  close(): Promise<void>
}

export function openAccessLog(target: string, events: RelayEvents, onError: (err: Error) => void, relay?: string): AccessLog {
  const toStdout = target === '-'
  let out: NodeJS.WritableStream & { writableLength: number }
  let file: WriteStream | undefined
  const open = (): void => {
    if (toStdout) {
      out = process.stdout
      return
    }
    file = createWriteStream(target, { flags: 'a', mode: 0o640 })
    file.on('error', onError)
    out = file
  }
  open()
  let dropped = 0
  const off = events.on('request:end', (record) => {
    if (out.writableLength > MAX_BUFFERED) {
      dropped++
      return
    }
    out.write(accessLogLine(record, relay))
  })
  const closeFile = (f: WriteStream | undefined): Promise<void> =>
    new Promise((resolve) => (f ? f.end(() => resolve()) : resolve()))
  return {
    get dropped() {
      return dropped
    },
    reopen() {
      if (toStdout) return
      const old = file
      open()
      void closeFile(old)
    },
    close: async () => {
      off()
      await closeFile(file)
    },
  }
}
