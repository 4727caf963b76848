/**
 * Fuzz target for the relay's HTTP front: raw bytes on a real socket to a real relay,
 * agent and upstream (in this process, so an uncaught exception anywhere fails the run).
 * Shared by the bounded run in `npm test` (relay-front-fuzz.test.ts) and `npm run fuzz`.
 *
 * The bytes are HTTP-shaped (request lines, Host forms, smuggling and upgrade headers,
 * chunked bodies, pipelined requests), then mutated. For each connection:
 * - the relay closes it after the client half-closes (no hang), within a bound;
 * - what it sent parses as HTTP/1.1 responses, and every answer that is neither the
 *   upstream's nor the policy's own and is an error (the relay's own `/` page is a 200) carries a
 *   `gw-error-code`;
 * - the upstream never sees a path the traffic policy denies (`/admin…`, however it was
 *   spelled: absolute form, dot segments, `//`, escapes), nor a client-sent
 *   `X-Gw-Oidc-*` identity header.
 * Afterwards the relay holds no stream and still answers.
 */
import fc from 'fast-check'
import { connect } from 'node:net'
import { compilePolicy } from '@gw/cli/policy/index'
import { rmSync } from 'node:fs'
import { startRelay } from '@gw/relay'
import { startAgent } from '@gw/cli/agent/agent'
import { startUpstream, tempDir, waitFor } from '../helpers/stack.js'

const CLOSE_BOUND_MS = 15_000
const HOLD_MS = 50
const STREAM_BOUND_MS = Number(process.env.GW_FUZZ_STREAM_BOUND ?? 5_000)

/** Mostly what a client sends, sometimes what it should not: most bytes must get past the parser to test what is behind it. */
const usually = <T>(common: fc.Arbitrary<T>, odd: fc.Arbitrary<T>): fc.Arbitrary<T> => fc.oneof({ arbitrary: common, weight: 5 }, { arbitrary: odd, weight: 1 })

const methods = usually(fc.constantFrom('GET', 'GET', 'POST', 'HEAD', 'PUT', 'OPTIONS', 'DELETE'), fc.constantFrom('CONNECT', 'TRACE', 'PRI', 'G ET', 'get', ''))
const targets = (host: string) =>
  fc.oneof(
    fc.constantFrom(
      '/', '/ok', '/admin', '/admin/x', '//admin', '///admin/', '/x/../admin', '/./admin', '/x/./../admin/y', '/%61dmin', '/adm%69n/x',
      '/%2e%2e/admin', '/x/%2e%2e/admin', '/x/%2E./admin', '/%2fadmin', '/x%2F..%2Fadmin', '/\\admin', '/x\\..\\admin', '/admin#frag', '/ok#/../admin',
      '/ok?next=/admin', '/ok?%', '/%', '/%zz', '/%00admin', '/ok%0d%0aX: y', `http://${host}/admin`, `HTTP://${host.toUpperCase()}//admin`, `http://${host}`,
      `http://${host}?q`, `http://other.localhost/admin`, `https://${host}/x/../admin`, '*', 'admin', '', '/admin/../ok', '/ok/..', '/..', '/../admin',
    ),
    fc.stringMatching(/^\/[a-z0-9/._%~?=&#-]{0,24}$/),
  )
const versions = usually(fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'), fc.constantFrom('HTTP/2.0', 'HTTP/1.2', 'HTTP/0.9', 'http/1.1', 'HTTP/1.1 x', ''))
const hosts = (host: string) =>
  usually(fc.constantFrom(host, `${host}:80`, host.toUpperCase()), fc.constantFrom(`${host}.`, `x.${host}`, '127.0.0.1', 'localhost', `${host}, ${host}`, '', `${host}\t`, 'other.localhost'))
const goodHeaders = fc.constantFrom(
  'Content-Length: 0', 'Content-Length: 5', 'Transfer-Encoding: chunked', 'Connection: close', 'Connection: keep-alive', 'Connection: Upgrade', 'Upgrade: websocket',
  'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Expect: 100-continue', 'X-Gw-Oidc-Email: root@example.com', 'x-gw-oidc-sub: admin',
  'X-Forwarded-For: 10.0.0.1', 'Authorization: Basic YWxpY2U6c2VjcmV0', 'Cookie: s=1', 'Accept: */*', 'Content-Type: application/json',
)
const oddHeaders = fc.constantFrom(
  'Content-Length: 0', 'Content-Length: 5', 'Content-Length: 40', 'Content-Length: -1', 'Content-Length: 5, 5', 'Content-Length: 1e3', 'Content-Length: 0x10',
  'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked, identity', 'Transfer-Encoding: identity', 'Transfer-Encoding:  chunked', 'Transfer-Encoding: xchunked',
  'Connection: close', 'Connection: keep-alive', 'Connection: Upgrade', 'Upgrade: websocket', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA',
  'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Expect: 100-continue', 'Expect: nonsense',
  'X-Gw-Oidc-Email: root@example.com', 'x-gw-oidc-sub: admin', 'X-Forwarded-For: 10.0.0.1', 'Authorization: Basic YWxpY2U6c2VjcmV0', 'Cookie: s=1',
  ' folded: continuation', 'Bad Header: x', 'X: a\x00b', 'X: a\x7fb', 'X:\x01', ':authority: x', 'Host: other.localhost', 'X-Long: ' + 'a'.repeat(3000),
)
const headerLines = usually(goodHeaders, oddHeaders)
const bodies = fc.oneof(
  fc.constant(''),
  fc.constant(''),
  fc.constantFrom('hello', '5\r\nhello\r\n0\r\n\r\n', '0\r\n\r\n', 'ffffffffffffffff\r\n', '3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n', '5\nhello\n0\n\n', 'zz\r\n'),
  fc.string({ maxLength: 60 }),
)

export interface FuzzRequest {
  bytes: Buffer
  cuts: number[]
  /** Keep the connection open until the first answer (or a short idle) before the half-close, which Node takes as an abort. */
  hold: boolean
}

export function requests(host: string): fc.Arbitrary<FuzzRequest> {
  const one = fc
    .record({
      method: methods,
      target: targets(host),
      version: versions,
      host: fc.option(hosts(host), { freq: 8 }),
      headers: fc.array(headerLines, { maxLength: 6 }),
      eol: usually(fc.constant('\r\n'), fc.constant('\n')),
      body: bodies,
    })
    .map((r) => {
      const lines = [`${r.method} ${r.target} ${r.version}`.replace(/ +$/, ''), ...(r.host === null ? [] : [`Host: ${r.host}`]), ...r.headers]
      return lines.join(r.eol) + r.eol + r.eol + r.body
    })
  return fc
    .record({
      parts: fc.array(one, { minLength: 1, maxLength: 3 }),
      flips: usually(fc.constant([] as Array<[number, number]>), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 })),
      cuts: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 4 }),
      hold: fc.boolean(),
    })
    .map(({ parts, flips, cuts, hold }) => {
      const bytes = Buffer.from(parts.join(''), 'latin1')
      for (const [at, value] of flips) if (bytes.length > 0) bytes[at % bytes.length] = value
      return { bytes, cuts, hold }
    })
}

/** Resolve dot segments and runs of slashes after decoding every escape: what a lenient app router could make of a path. */
export function leniently(url: string): string {
  let path = url.split('?')[0]!.split('#')[0]!
  try {
    path = decodeURIComponent(path)
  } catch {
    path = path.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
  }
  path = path.replace(/\\/g, '/')
  const out: string[] = []
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  return `/${out.join('/')}`
}

interface Seen {
  urls: string[]
  identity: string[]
}

/** What the run reached, so a report can show the bytes got past the parser. */
export interface FuzzStats {
  connections: number
  upstreamRequests: number
  statuses: Map<number, number>
}

export interface FrontFuzz {
  property: fc.IAsyncProperty<[FuzzRequest[]]>
  /** Connections sent per property run. */
  perRun: number
  stats: FuzzStats
  /** The end-of-run checks: no stream held, the relay still answers. */
  settle(): Promise<void>
  close(): Promise<void>
}

function send(port: number, request: FuzzRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the relay did not close the connection within ${CLOSE_BOUND_MS} ms after the client's half-close; it sent ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 300))} for ${JSON.stringify(request.bytes.toString('latin1').slice(0, 400))} cut ${JSON.stringify(request.cuts)}`))
    }, CLOSE_BOUND_MS)
    socket.on('connect', () => {
      let at = 0
      for (const size of request.cuts) {
        if (at >= request.bytes.length) break
        socket.write(request.bytes.subarray(at, at + size))
        at += size
      }
      if (at < request.bytes.length) socket.write(request.bytes.subarray(at))
      if (!request.hold) return void socket.end()
      idle = setTimeout(() => socket.end(), HOLD_MS)
    })
    let idle: NodeJS.Timeout | undefined
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      if (idle) {
        clearTimeout(idle)
        idle = undefined
        socket.end()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      clearTimeout(idle)
      resolve(Buffer.concat(chunks).toString('latin1'))
    })
  })
}

/** Checks what the relay sent: a run of responses, each coded unless it is the upstream's. */
function checkAnswer(out: string, request: FuzzRequest, stats: FuzzStats): void {
  let rest = out
  while (rest.length > 0) {
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n/.exec(rest)
    if (!m) throw new Error(`not an HTTP/1.1 response: ${JSON.stringify(rest.slice(0, 200))} for ${JSON.stringify(request.bytes.toString('latin1').slice(0, 300))}`)
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) return // cut mid-head by a reset: allowed when the relay aborts a connection
    const head = rest.slice(0, end)
    const status = Number(m[1])
    stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1)
    rest = rest.slice(end + 4)
    if (status === 100) continue
    if (status === 101) return // raw bytes follow
    // The upstream's answers and the policy's own are the user's; everything else is gw's.
    const fromUpstream = /\r\nx-fuzz-(?:upstream|policy): 1/i.test(head)
    if (status >= 400 && !fromUpstream && !/\r\ngw-error-code: GW_ERR_[A-Z_]+/i.test(head)) {
      throw new Error(`a relay answer without gw-error-code: ${JSON.stringify(head)} for ${JSON.stringify(request.bytes.toString('latin1').slice(0, 300))}`)
    }
    // A HEAD's answer has no body whatever its Content-Length says.
    if (rest.startsWith('HTTP/1.1 ')) continue
    const length = /\r\ncontent-length: (\d+)/i.exec(head)
    if (length) rest = rest.slice(Number(length[1]))
    else if (/\r\ntransfer-encoding: chunked/i.test(head)) {
      const last = rest.indexOf('0\r\n\r\n')
      rest = last === -1 ? '' : rest.slice(last + 5)
    } else return // a body to the close (or a HEAD): nothing after it to check
  }
}

export async function startFrontFuzz(perRun = 8): Promise<FrontFuzz> {
  const seen: Seen = { urls: [], identity: [] }
  const stats: FuzzStats = { connections: 0, upstreamRequests: 0, statuses: new Map() }
  const upstream = await startUpstream((req, res) => {
    stats.upstreamRequests++
    seen.urls.push(req.url ?? '')
    for (const name of Object.keys(req.headers)) if (name.startsWith('x-gw-oidc-')) seen.identity.push(`${name}: ${String(req.headers[name])}`)
    req.on('error', () => {})
    req.resume()
    req.on('end', () => {
      res.setHeader('x-fuzz-upstream', '1')
      res.end('upstream')
    })
  })
  // What the upstream's own parser refuses (the agent forwards methods such as PRI) is
  // still the upstream's answer.
  upstream.server.on('clientError', (_err, socket) => socket.end('HTTP/1.1 400 Bad Request\r\nx-fuzz-upstream: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'))
  const stateDir = tempDir()
  const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir, maxHeaderSize: 4096 })
  const policy = compilePolicy({ on_http_request: [{ expressions: ["req.url.path.startsWith('/admin')"], actions: [{ type: 'custom-response', config: { status_code: 403, headers: { 'x-fuzz-policy': '1' }, content: 'denied' } }] }] })
  const agent = await startAgent({ relay: relay.httpUrl!, endpoints: [{ upstream: upstream.url, policy }] })
  const host = `${agent.tunnels[0]!.publicName}.localhost`
  const port = Number(new URL(relay.httpUrl!).port)

  const property = fc.asyncProperty(fc.array(requests(host), { minLength: perRun, maxLength: perRun }), async (batch) => {
    seen.urls.length = 0
    const answers = await Promise.all(batch.map((r) => send(port, r)))
    stats.connections += batch.length
    answers.forEach((out, i) => checkAnswer(out, batch[i]!, stats))
    const denied = seen.urls.find((u) => leniently(u).startsWith('/admin'))
    if (denied !== undefined) throw new Error(`the upstream saw ${JSON.stringify(denied)}, a path the policy denies`)
    if (seen.identity.length > 0) throw new Error(`the upstream saw client-sent identity headers: ${seen.identity.join('; ')}`)
    // Every connection is closed: no stream may outlive its exchange.
    if (relay.openStreams() > 0) {
      await waitFor(() => relay.openStreams() === 0, STREAM_BOUND_MS, `the relay to release its streams after the connections closed (holds ${relay.openStreams()}) for ${JSON.stringify(batch.map((r) => r.bytes.toString('latin1').slice(0, 300)))}`)
    }
  })

  return {
    property,
    perRun,
    stats,
    settle: async () => {
      await waitFor(() => relay.openStreams() === 0, 15_000, `the relay to hold no stream (holds ${relay.openStreams()})`)
      const res = await fetch(`${relay.httpUrl}/healthz`)
      if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`)
      if (relay.onlineNames().length !== 1) throw new Error('the agent lost its tunnel')
    },
    close: async () => {
      await agent.close()
      await relay.close()
      await upstream.close()
      rmSync(stateDir, { recursive: true, force: true })
    },
  }
}
