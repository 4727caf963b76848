/**
 * HTTP/2 to the upstream (`--upstream-protocol http2`, ngrok's `upstream.protocol`): h2c
 * with prior knowledge to an `http://` upstream, h2 by ALPN to an `https://` one. One
 * node:http2 session per origin carries every call as a stream, which is what gRPC
 * servers expect.
 *
 * It takes the same calls and the same dispatch handler as the undici Agent
 * (dispatcher.ts, call.ts), so retries, pools, the policy and the fast path are the
 * same code for both protocols. It is node:http2 rather than undici's HTTP/2 client
 * because that one drops the body still buffered behind a paused stream when the
 * trailers arrive (the stream's 'trailers' event comes before its last 'data'), which is
 * every gRPC response larger than a window when the relay applies backpressure. Here
 * the trailers are kept until the body has been read to its end.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { UpstreamClientOptions } from './dispatcher.js'
import { isLocalhost, localhostAddress } from './loopback-choice.js'

interface Call {
  origin: string
  path: string
  method: string
  headers: string[]
  body: Readable | null
}

interface Handler {
  onConnect?(abort: (err?: Error) => void): void
  onHeaders?(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean
  onData?(chunk: Buffer): boolean
  onComplete?(trailers: string[]): void
  onError?(err: Error): void
}

/** Errors with the codes undici gives the same failures, so failure.ts reads them alike. */
function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code })
}

/** A session idle this long (no stream open) is closed. */
const IDLE_MS = 4_000

interface Pooled {
  session: ClientHttp2Session
  open: number
  idle: NodeJS.Timeout | undefined
}

export class Http2Upstream {
  private readonly sessions = new Map<string, Promise<Pooled>>()
  private closed = false

  constructor(private readonly options: UpstreamClientOptions) {}

  /** undici's Dispatcher shape: start `call`, report to `handler`. */
  dispatch(call: Call, handler: Handler): boolean {
    let done = false
    let stream: ClientHttp2Stream | undefined
    let pooled: Pooled | undefined
    let headTimer: NodeJS.Timeout | undefined
    const finish = (): void => {
      done = true
      clearTimeout(headTimer)
      if (pooled) release(pooled)
      pooled = undefined
    }
    const fail = (err: Error): void => {
      if (done) return
      finish()
      if (stream && !stream.closed) stream.close(constants.NGHTTP2_CANCEL)
      call.body?.destroy()
      handler.onError?.(err)
    }
    handler.onConnect?.((err) => fail(err ?? coded('UND_ERR_ABORTED', 'the request was aborted')))
    if (done) return true

    let headers: OutgoingHttpHeaders
    try {
      headers = requestHeaders(call)
    } catch (err) {
      fail(err as Error)
      return true
    }
    headTimer = setTimeout(() => fail(coded('UND_ERR_HEADERS_TIMEOUT', 'the upstream did not send response headers in time')), this.options.responseTimeout)

    this.session(call.origin).then((p) => {
      if (done) return
      pooled = p
      p.open++
      clearTimeout(p.idle)
      try {
        stream = p.session.request(headers, { endStream: call.body === null })
      } catch (err) {
        return fail(err as Error)
      }
      this.serve(stream, call, handler, fail, finish, () => clearTimeout(headTimer))
    }, fail)
    return true
  }

  private serve(stream: ClientHttp2Stream, call: Call, handler: Handler, fail: (err: Error) => void, finish: () => void, gotHead: () => void): void {
    let trailers: string[] = []
    let answered = false
    stream.on('response', (h: IncomingHttpHeaders) => {
      gotHead()
      answered = true
      const raw: Buffer[] = []
      for (const [name, value] of Object.entries(h)) {
        if (name.startsWith(':') || value === undefined) continue
        for (const v of Array.isArray(value) ? value : [value]) raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(v), 'latin1'))
      }
      let flowing: boolean
      try {
        flowing = handler.onHeaders?.(Number(h[':status']), raw, () => stream.resume(), '') ?? true
      } catch (err) {
        return fail(err as Error)
      }
      if (!flowing) stream.pause()
      if (this.options.bodyIdleTimeout > 0) {
        stream.setTimeout(this.options.bodyIdleTimeout, () => fail(coded('UND_ERR_BODY_TIMEOUT', 'the upstream\'s body stayed silent too long')))
      }
    })
    stream.on('data', (chunk: Buffer) => {
      try {
        if (handler.onData?.(chunk) === false) stream.pause()
      } catch (err) {
        fail(err as Error)
      }
    })
    // Kept until 'end': the body before them may still be buffered behind a pause.
    stream.on('trailers', (t: IncomingHttpHeaders) => {
      trailers = flatHeaders(t)
    })
    stream.on('end', () => {
      if (!answered) return fail(coded('UND_ERR_SOCKET', 'the upstream ended the stream without a response'))
      finish()
      try {
        handler.onComplete?.(trailers)
      } catch (err) {
        handler.onError?.(err as Error)
      }
    })
    stream.on('error', fail)
    stream.on('close', () => {
      fail(coded(answered ? 'UND_ERR_SOCKET' : 'ECONNRESET', `the upstream closed the HTTP/2 stream (code ${stream.rstCode})`))
    })
    if (call.body) {
      call.body.on('error', fail)
      call.body.pipe(stream)
    }
  }

  /** The session for `origin`, connecting if there is none. */
  private session(origin: string): Promise<Pooled> {
    if (this.closed) return Promise.reject(coded('UND_ERR_CLOSED', 'the agent is closing'))
    let pending = this.sessions.get(origin)
    if (!pending) {
      const made = this.connect(origin)
      pending = made
      this.sessions.set(origin, made)
      // A session that fails, closes or is told GOAWAY takes no new calls; the next connects again.
      made.then((p) => {
        const forget = (): void => {
          clearTimeout(p.idle)
          this.forget(origin, made)
        }
        p.session.once('close', forget)
        p.session.once('goaway', forget)
        if (p.session.closed || p.session.destroyed) forget()
      }, () => this.forget(origin, made))
    }
    return pending
  }

  private async connect(origin: string): Promise<Pooled> {
    const url = new URL(origin)
    const tls = url.protocol === 'https:'
    const port = Number(url.port) || (tls ? 443 : 80)
    const hostname = url.hostname.replace(/^\[|\]$/g, '')
    const connectTimeout = Math.min(this.options.responseTimeout, 10_000)
    // localhost: straight to the loopback address the port answers on (loopback-choice.ts).
    const host = isLocalhost(hostname) ? await localhostAddress(port, connectTimeout) : hostname
    const session = connect(origin, {
      host,
      port,
      ...(tls ? { servername: isIp(hostname) ? '' : hostname, ALPNProtocols: ['h2'], rejectUnauthorized: this.options.tlsVerify } : {}),
      maxHeaderListPairs: 2000,
      settings: { enablePush: false },
    })
    const pooled: Pooled = { session, open: 0, idle: undefined }
    session.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.destroy()
        reject(coded('UND_ERR_CONNECT_TIMEOUT', `connecting to ${origin} timed out after ${connectTimeout} ms`))
      }, connectTimeout)
      session.once('connect', () => {
        clearTimeout(timer)
        resolve()
      })
      session.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
    })
    return pooled
  }

  private forget(origin: string, pending: Promise<Pooled>): void {
    if (this.sessions.get(origin) === pending) this.sessions.delete(origin)
  }

  async close(): Promise<void> {
    this.closed = true
    const all = [...this.sessions.values()]
    this.sessions.clear()
    await Promise.all(all.map((p) => p.then(({ session, idle }) => {
      clearTimeout(idle)
      return new Promise<void>((resolve) => {
        if (session.closed) return resolve()
        session.close(() => resolve())
        // Streams still open are cut after a moment rather than holding the close.
        setTimeout(() => session.destroy(), 1000).unref()
      })
    }, () => undefined)))
  }

  /** As an undici Dispatcher, for the code that calls `dispatcher.dispatch`. */
  asDispatcher(): Dispatcher {
    return this as unknown as Dispatcher
  }
}

/**
 * The call's headers as node:http2 takes them: lower-case names, `host` as `:authority`,
 * a repeated name's values in an array (cookies joined with `; `, RFC 9113 §8.2.3).
 * Connection-specific fields are already gone (request-context.ts); a value Node refuses
 * throws, and the call fails as a bad request to the upstream.
 */
function requestHeaders(call: Call): OutgoingHttpHeaders {
  const url = new URL(call.origin)
  const out: OutgoingHttpHeaders = {}
  let authority = url.host
  const cookies: string[] = []
  for (let i = 0; i < call.headers.length; i += 2) {
    const name = call.headers[i]!.toLowerCase()
    const value = call.headers[i + 1]!
    if (name === 'host') authority = value
    else if (name === 'cookie') cookies.push(value)
    else {
      const seen = out[name]
      out[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [String(seen), value]
    }
  }
  if (cookies.length > 0) out.cookie = cookies.join('; ')
  out[':method'] = call.method
  out[':path'] = call.path
  out[':scheme'] = url.protocol.slice(0, -1)
  out[':authority'] = authority
  return out
}

/** A call ended on this session: close it once nothing has used it for IDLE_MS. */
function release(pooled: Pooled): void {
  pooled.open--
  if (pooled.open > 0 || pooled.session.closed) return
  clearTimeout(pooled.idle)
  pooled.idle = setTimeout(() => {
    if (pooled.open === 0) pooled.session.close()
  }, IDLE_MS)
  pooled.idle.unref()
}

function flatHeaders(h: IncomingHttpHeaders): string[] {
  const out: string[] = []
  for (const [name, value] of Object.entries(h)) {
    if (name.startsWith(':') || value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) out.push(name, String(v))
  }
  return out
}

function isIp(hostname: string): boolean {
  return /^[\d.]+$/.test(hostname) || hostname.includes(':')
}
