/**
 * Interop with hashicorp/yamux, the reference implementation, in both directions: its
 * source is vendored under test/interop/go (built offline with -mod=vendor), and a small
 * Go peer (test/interop/go/main.go) serves and opens streams against gw's Session.
 *
 * Every case runs over bare TCP and over one WebSocket, the way gw's links run: the Go
 * side speaks through gorilla/websocket (vendored too, test/interop/go/ws.go), gw's side
 * through the `ws` package with the relay's and the agent's own options and the production
 * adapter, createWebSocketTransport.
 *
 * Skipped, saying so, when `go` is not installed (scripts/setup-system.sh brings golang-go).
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { WebSocket, WebSocketServer } from 'ws'
import { AGENT_PATH, createWebSocketTransport, LINK_DEFAULTS, MuxError, Session, type Stream } from '@gw/protocol'
import { startRelay } from '@gw/relay'
import { tempDir } from '../helpers/stack.js'
import { ignore, readAll, until } from './mux-helpers.js'

const GO_DIR = fileURLToPath(new URL('../../interop/go/', import.meta.url))

function goVersion(): string | undefined {
  try {
    return execFileSync('go', ['version'], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}
const GO = goVersion()
const SKIP = GO ? false : 'go is not installed (scripts/setup-system.sh installs golang-go); the hashicorp/yamux interop suite needs it'

let buildDir = ''
let peerBinary = ''

/** The same bytes main.go's pattern() makes. */
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = ((i * 31 + Math.floor(i / 251)) % 251)
  return b
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

type Line = Record<string, unknown>

class GoPeer {
  readonly proc: ChildProcess
  readonly lines: Line[] = []
  private waiters: Array<{ match: (l: Line) => boolean; resolve: (l: Line) => void }> = []

  constructor(args: string[]) {
    this.proc = spawn(peerBinary, args, { stdio: ['pipe', 'pipe', 'inherit'] })
    createInterface({ input: this.proc.stdout! }).on('line', (text) => {
      const line = JSON.parse(text) as Line
      this.lines.push(line)
      const at = this.waiters.findIndex((w) => w.match(line))
      if (at !== -1) this.waiters.splice(at, 1)[0]!.resolve(line)
    })
  }

  wait(match: (l: Line) => boolean): Promise<Line> {
    const seen = this.lines.find(match)
    if (seen) {
      this.lines.splice(this.lines.indexOf(seen), 1)
      return Promise.resolve(seen)
    }
    return new Promise((resolve) => this.waiters.push({ match, resolve }))
  }

  event(name: string): Promise<Line> {
    return this.wait((l) => l.event === name)
  }

  async run(cmd: string): Promise<Line> {
    const answer = this.wait((l) => l.cmd === cmd)
    this.proc.stdin!.write(cmd + '\n')
    return answer
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return
    const exited = once(this.proc, 'exit')
    this.proc.stdin!.end()
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }
}

interface Link {
  session: Session
  peer: GoPeer
  close(): Promise<void>
}

type Transport = 'tcp' | 'ws'

/** gw as the yamux server, hashicorp dialing in (the relay's side of a Go agent). */
async function goDials(transport: Transport): Promise<Link> {
  if (transport === 'ws') {
    // The relay's WebSocketServer options (packages/relay/src/relay.ts) on a path like its agent endpoint's.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: LINK_DEFAULTS.wsMaxPayload })
    await once(wss, 'listening')
    const { port } = wss.address() as net.AddressInfo
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>
    const peer = new GoPeer(['-ws', '-dial', `ws://127.0.0.1:${port}/_gw/agent`])
    const [ws] = await accepted
    const session = new Session(createWebSocketTransport(ws), { client: false, keepAliveInterval: 0 })
    serveStreams(session)
    await peer.event('ready')
    return { session, peer, close: async () => { session.close(); await peer.stop(); wss.close() } }
  }
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  const accepted = once(server, 'connection')
  const peer = new GoPeer(['-dial', `127.0.0.1:${port}`])
  const [socket] = (await accepted) as [net.Socket]
  socket.setNoDelay(true)
  const session = new Session(socket, { client: false, keepAliveInterval: 0 })
  serveStreams(session)
  await peer.event('ready')
  return { session, peer, close: async () => { session.close(); await peer.stop(); server.close() } }
}

/** The agent's all-zero mask on loopback (packages/cli/src/agent/relay-connection.ts). */
function keepZeroMask(): void {}

/** gw dialing a hashicorp server (the agent's side against a Go relay). */
async function gwDials(transport: Transport): Promise<Link> {
  const peer = new GoPeer(transport === 'ws' ? ['-ws', '-listen', '127.0.0.1:0'] : ['-listen', '127.0.0.1:0'])
  const { port } = (await peer.event('listening')) as { port: number }
  let session: Session
  if (transport === 'ws') {
    // The agent's WebSocket options (packages/cli/src/agent/relay-connection.ts).
    const ws = new WebSocket(`ws://127.0.0.1:${port}/_gw/agent`, { perMessageDeflate: false, generateMask: keepZeroMask, maxPayload: LINK_DEFAULTS.wsMaxPayload })
    await once(ws, 'open')
    session = new Session(createWebSocketTransport(ws), { client: true, keepAliveInterval: 0 })
  } else {
    const socket = net.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.setNoDelay(true)
    session = new Session(socket, { client: true, keepAliveInterval: 0 })
  }
  serveStreams(session)
  await peer.event('ready')
  return { session, peer, close: async () => { session.close(); await peer.stop() } }
}

/** Streams Go opened with 'B', paused by gw, with what came before the pause. */
const held = new WeakMap<Session, Array<{ stream: Stream; first: Buffer }>>()

/**
 * gw's side of the streams Go opens: by first byte, E echoes, N never reads, B pauses and
 * waits for a test to take it (`held`).
 */
function serveStreams(session: Session): void {
  held.set(session, [])
  session.on('stream', (stream: Stream) => {
    stream.on('error', ignore)
    let first = true
    const onData = (chunk: Buffer): void => {
      if (first) {
        first = false
        if (chunk[0] === 0x4e /* N */ || chunk[0] === 0x42 /* B */) {
          stream.off('data', onData)
          stream.pause()
          if (chunk[0] === 0x42) held.get(session)!.push({ stream, first: chunk.subarray(1) })
          return
        }
        chunk = chunk.subarray(1)
      }
      if (chunk.length > 0 && !stream.write(chunk)) {
        stream.pause()
        stream.once('drain', () => stream.resume())
      }
    }
    stream.on('data', onData)
    stream.on('end', () => stream.end())
  })
}

/** gw opens an echo stream, sends `data`, half-closes, and returns what came back. */
async function gwEcho(session: Session, data: Buffer): Promise<Buffer> {
  const stream = session.open()
  const back = readAll(stream)
  stream.write('E')
  stream.end(data)
  return back
}

const DIRECTIONS: Array<[string, (transport: Transport) => Promise<Link>]> = [
  ['hashicorp dials gw', goDials],
  ['gw dials hashicorp', gwDials],
]
const TRANSPORTS: Transport[] = ['tcp', 'ws']
const CASES = TRANSPORTS.flatMap((transport) =>
  DIRECTIONS.map(([direction, dial]) => [`${direction} over ${transport === 'ws' ? 'a WebSocket' : 'TCP'}`, () => dial(transport)] as const))

describe('interop with hashicorp/yamux', { skip: SKIP }, () => {
  before(() => {
    buildDir = mkdtempSync(join(tmpdir(), 'gw-yamux-'))
    peerBinary = join(buildDir, 'peer')
    // Offline: the module's only dependency is vendored.
    execFileSync('go', ['build', '-o', peerBinary, '.'], {
      cwd: GO_DIR,
      stdio: 'inherit',
      env: { ...process.env, GOFLAGS: '-mod=vendor', GOPROXY: 'off', GOCACHE: join(buildDir, 'cache'), GOPATH: join(buildDir, 'gopath'), GOTOOLCHAIN: 'local' },
    })
  })
  after(() => rmSync(buildDir, { recursive: true, force: true }))

  it('an unmodified hashicorp client over gorilla/websocket resets streams before its hello: a real gw relay stays up', async () => {
    // Issue 10's pre-auth crash: streams beyond the control stream, half-closed and then
    // reset by hashicorp's own StreamCloseTimeout (or refused by the relay first).
    const stateDir = tempDir()
    const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir })
    try {
      const peer = new GoPeer(['-relay-reset', `ws://127.0.0.1:${relay.httpPort}${AGENT_PATH}`])
      const r = await peer.event('reset')
      await peer.stop()
      assert.equal(r.ok, true, String(r.err))
      const streams = r.streams as string[]
      assert.equal(streams.length, 3)
      for (const err of streams) assert.match(err, /reset/i, 'each stream beyond the control stream ends reset')
      const health = await fetch(`${relay.httpUrl}/healthz`)
      assert.equal(health.status, 200, 'the relay still answers')
      await health.text()
    } finally {
      await relay.close()
      rmSync(stateDir, { recursive: true, force: true })
    }
  })

  for (const [direction, connect] of CASES) {
    describe(direction, () => {
      let link: Link
      before(async () => {
        link = await connect()
      })
      after(() => link.close())

      it('echo from gw, 0 B to 64 MiB, checksums equal', async () => {
        for (const size of [0, 1, 1000, 256 * 1024, 256 * 1024 + 1, 4 << 20, 64 << 20]) {
          const data = pattern(size)
          const back = await gwEcho(link.session, data)
          assert.equal(back.length, size)
          assert.equal(sha(back), sha(data), `${size} bytes`)
        }
      })

      it('echo from hashicorp, 0 B to 64 MiB: its one-write frames up to the window gw granted are accepted', async () => {
        for (const size of [0, 1, 1000, 256 * 1024, 4 << 20, 64 << 20]) {
          const r = await link.peer.run(`echo ${size} 1 1`)
          assert.equal(r.ok, true, `${size} bytes: ${String(r.err)}`)
        }
        assert.equal(link.session.closed, false)
      })

      it('hashicorp sends 64 MiB in one write into a window gw grows', async () => {
        const stream = link.session.open()
        const size = Buffer.alloc(8)
        size.writeBigUInt64BE(BigInt(64 << 20))
        const back = readAll(stream)
        stream.write('G')
        stream.end(size)
        const got = await back
        assert.equal(got.length, 64 << 20)
        assert.equal(sha(got), sha(pattern(64 << 20)))
        assert.equal(link.session.closed, false)
      })

      it('1,000 concurrent streams opened by gw: none reset by hashicorp\'s accept backlog', async () => {
        const data = pattern(1024)
        const backs = await Promise.all(Array.from({ length: 1000 }, () => gwEcho(link.session, data)))
        for (const b of backs) assert.ok(b.equals(data))
      })

      it('1,000 concurrent streams opened by hashicorp', async () => {
        const r = await link.peer.run('echo 1024 1000 1000')
        assert.equal(r.ok, true, String(r.err))
      })

      it('1,024 opens by hashicorp at once are ACKed without a wait', async (t) => {
        const r = await link.peer.run('opens 1024')
        assert.equal(r.ok, true, String(r.err))
        t.diagnostic(`1,024 opens from hashicorp, answered by gw: ${Number(r.ms).toFixed(1)} ms`)
      })

      it('half-close, hashicorp first: gw still sends after its FIN', async () => {
        const stream = link.session.open()
        stream.on('error', ignore)
        stream.write('F')
        const got = await readAll(stream)
        assert.equal(got.toString(), 'bye')
        assert.equal(stream.writable, true)
        const reported = link.peer.event('F')
        stream.end(pattern(100_000))
        const r = await reported
        assert.equal(r.bytes, 100_000)
        assert.equal(r.err, '')
      })

      it('RST from hashicorp (its close timeout) reaches the gw stream as GW_ERR_MUX_STREAM_RESET', async () => {
        const stream = link.session.open()
        stream.on('data', () => {})
        stream.write('R')
        const [err] = (await once(stream, 'error')) as [MuxError]
        assert.equal(err.code, 'GW_ERR_MUX_STREAM_RESET')
        assert.equal(link.session.closed, false)
      })

      it('RST from gw fails hashicorp\'s read', async () => {
        const stream = link.session.open()
        stream.on('error', ignore)
        const reported = link.peer.event('W')
        stream.write('W')
        stream.write(pattern(1000))
        await new Promise((resolve) => setTimeout(resolve, 50))
        stream.destroy()
        const r = await reported
        assert.match(String(r.err), /reset/i)
      })

      it('a non-reading hashicorp receiver stops gw\'s writer at the window', async () => {
        const stream = link.session.open()
        stream.on('error', ignore)
        stream.write('N')
        let done = false
        stream.write(Buffer.alloc(8 << 20), () => (done = true))
        await new Promise((resolve) => setTimeout(resolve, 300))
        assert.equal(done, false)
        // What waits is everything but the 256 KiB window hashicorp granted.
        assert.ok(stream.writableLength >= (8 << 20) - 256 * 1024, `${stream.writableLength} bytes wait`)
        stream.destroy()
      })

      it('a non-reading gw receiver stops hashicorp\'s writer at the window gw granted', async () => {
        const r = await link.peer.run('nonread 300')
        assert.equal(r.ok, true, `the write ended with ${String(r.err)}`)
        assert.ok(Number(r.written) <= 256 * 1024, `${Number(r.written)} bytes written`)
      })

      it('a paused gw reader holds at most its window and one highWaterMark while hashicorp pushes 8 MiB; resumed, every byte arrives', async () => {
        const size = 8 << 20
        const pushed = link.peer.run(`push ${size}`)
        const queue = held.get(link.session)!
        await until(() => queue.length > 0, 'the pushed stream to reach gw')
        const { stream, first } = queue.shift()!
        // The window fills (256 KiB less what moved into the Readable), then stays full: sample it.
        await until(() => stream.receiveBuffered >= 128 * 1024, 'hashicorp to fill the window')
        let most = 0
        for (let i = 0; i < 30; i++) {
          most = Math.max(most, stream.receiveBuffered)
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
        // Other streams on the link still flow while this one's reader sleeps.
        assert.ok((await gwEcho(link.session, pattern(100_000))).equals(pattern(100_000)))
        most = Math.max(most, stream.receiveBuffered)
        const bound = 256 * 1024 + stream.readableHighWaterMark
        assert.ok(most <= bound, `${most} bytes held by a paused stream (bound ${bound})`)
        const rest = readAll(stream)
        stream.resume()
        const got = Buffer.concat([first, await rest])
        assert.equal(got.length, size)
        assert.equal(sha(got), sha(pattern(size)))
        const r = await pushed
        assert.equal(r.ok, true, String(r.err))
      })

      it('ping both ways', async () => {
        assert.ok((await link.session.ping()) >= 0)
        const r = await link.peer.run('ping')
        assert.equal(r.ok, true, String(r.err))
      })

      it('10,000 sequential streams each way leave 0 open on either side', async () => {
        // Earlier tests leave streams open on purpose (the non-reading receivers): count from here.
        const gwBefore = link.session.streamCount
        const goBefore = Number((await link.peer.run('streams')).streams)
        const data = pattern(16)
        for (let i = 0; i < 10_000; i++) assert.ok((await gwEcho(link.session, data)).equals(data))
        const r = await link.peer.run('echo 16 10000 1')
        assert.equal(r.ok, true, String(r.err))
        await until(() => link.session.streamCount === gwBefore, `gw to free every stream (${link.session.streamCount} open, ${gwBefore} before)`)
        let goStreams = -1
        for (let i = 0; i < 50 && goStreams !== goBefore; i++) {
          goStreams = Number((await link.peer.run('streams')).streams)
          if (goStreams !== goBefore) await new Promise((resolve) => setTimeout(resolve, 100))
        }
        assert.equal(goStreams - goBefore, 0, 'streams hashicorp still holds')
      })
    })

    describe(`${direction}: going away and closing`, () => {
      it('GoAway from gw: hashicorp can no longer open; open streams finish', async (t) => {
        const link = await connect()
        t.after(() => link.close())
        const data = pattern(1000)
        const stream = link.session.open()
        const back = readAll(stream)
        stream.write('E')
        link.session.goAway()
        stream.end(data)
        assert.ok((await back).equals(data))
        const r = await link.peer.run('open')
        assert.equal(r.ok, false)
        assert.match(String(r.err), /not accepting|go ?away/i)
      })

      it('GoAway from hashicorp: gw\'s open() refuses with GW_ERR_MUX_GOAWAY', async (t) => {
        const link = await connect()
        t.after(() => link.close())
        await link.peer.run('goaway')
        await until(() => {
          try {
            link.session.open().destroy()
            return false
          } catch (err) {
            return (err as MuxError).code === 'GW_ERR_MUX_GOAWAY'
          }
        }, 'open() to refuse')
      })

      it('gw closes the session with streams open: both sides fail them', async (t) => {
        const link = await connect()
        t.after(() => link.close())
        const stream = link.session.open()
        stream.write('N')
        const failed = once(stream, 'error')
        const goClosed = link.peer.event('closed')
        link.session.close()
        const [err] = (await failed) as [MuxError]
        assert.equal(err.code, 'GW_ERR_MUX_CLOSED')
        await goClosed
        assert.equal(link.session.streamCount, 0)
      })

      it('hashicorp closes the session with streams open: gw fails them and closes', async (t) => {
        const link = await connect()
        t.after(() => link.close())
        const opened = once(link.session, 'stream')
        const nonread = link.peer.run('nonread 2000')
        const [stream] = (await opened) as [Stream]
        const failed = once(stream, 'error')
        const closed = once(link.session, 'close')
        link.peer.proc.stdin!.write('close\n')
        await closed
        await failed
        assert.equal(link.session.streamCount, 0)
        await nonread
      })
    })
  }
})
