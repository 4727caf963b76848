/**
 * gRPC end to end: a grpc-js client over HTTPS (HTTP/2 by ALPN, the relay's own CA) to
 * the real `gw relay`, through the real `gw http --upstream-protocol http2` (and a v3
 * config with `upstream: {protocol: http2}`), to a real grpc-js server on h2c. Unary and
 * server-streaming calls, status and trailing metadata carried in HTTP/2 trailers.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { GW_BIN, spawnGw, spawnRelay, tempDir, waitFor, type Spawned } from '../helpers/stack.js'

const PROTO = `syntax = "proto3";
package gwtest;
service Echo {
  rpc Say (EchoRequest) returns (EchoReply);
  rpc Fail (EchoRequest) returns (EchoReply);
  rpc Count (CountRequest) returns (stream EchoReply);
}
message EchoRequest { string message = 1; bytes payload = 2; }
message CountRequest { int32 n = 1; }
message EchoReply { string message = 1; int32 index = 2; bytes payload = 3; string authority = 4; string te = 5; }
`

interface EchoReply {
  message: string
  index: number
  payload: Buffer
  authority: string
  te: string
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void
interface EchoClient extends grpc.Client {
  Say(req: { message: string; payload?: Buffer }, metadata: grpc.Metadata, options: grpc.CallOptions, cb: Callback<EchoReply>): grpc.ClientUnaryCall
  Fail(req: { message: string }, cb: Callback<EchoReply>): grpc.ClientUnaryCall
  Count(req: { n: number }): grpc.ClientReadableStream<EchoReply>
}

function loadEcho(dir: string): grpc.GrpcObject {
  const file = join(dir, 'echo.proto')
  writeFileSync(file, PROTO)
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { keepCase: true, defaults: true }))
}

/** The gRPC server: h2c on 127.0.0.1. `Count` sends each reply only after `release()`. */
async function startGrpcServer(pkg: grpc.GrpcObject): Promise<{ port: number; release: Array<() => void>; close(): Promise<void> }> {
  const server = new grpc.Server()
  const release: Array<() => void> = []
  const service = ((pkg.gwtest as grpc.GrpcObject).Echo as grpc.ServiceClientConstructor).service
  server.addService(service, {
    Say: (call: grpc.ServerUnaryCall<{ message: string; payload: Buffer }, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      const trailer = new grpc.Metadata()
      trailer.set('x-echo-trailer', `said ${call.request.message}`)
      const md = call.metadata.getMap()
      cb(null, {
        message: `echo: ${call.request.message}`, index: 0, payload: call.request.payload,
        authority: String(call.getPath() && (md[':authority'] ?? '')), te: String(md.te ?? ''),
      }, trailer)
    },
    Fail: (_call: grpc.ServerUnaryCall<unknown, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' })
    },
    Count: (call: grpc.ServerWritableStream<{ n: number }, EchoReply>) => {
      let i = 0
      const next = (): void => {
        i++
        call.write({ message: `reply ${i}`, index: i, payload: Buffer.alloc(0), authority: '', te: '' })
        if (i === call.request.n) {
          const trailer = new grpc.Metadata()
          trailer.set('x-count', String(i))
          call.end(trailer)
          return
        }
        release.push(next)
      }
      next()
    },
  })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
  return { port, release, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) }
}

interface RelayProcess {
  gw: Spawned
  httpPort: number
  httpsPort: number
  ca: string
}

async function startRelayProcess(dir: string): Promise<RelayProcess> {
  const gw = await spawnRelay({ workers: null, httpsPort: 0, stateDir: join(dir, 'relay') })
  return { gw, httpPort: gw.httpPort, httpsPort: gw.httpsPort!, ca: readFileSync(gw.started.ca, 'utf8') }
}

/** A grpc-js client to the relay's HTTPS port, with `host` as SNI and :authority. */
function echoClient(pkg: grpc.GrpcObject, relay: RelayProcess, host: string): EchoClient {
  const Echo = (pkg.gwtest as grpc.GrpcObject).Echo as grpc.ServiceClientConstructor
  return new Echo(`127.0.0.1:${relay.httpsPort}`, grpc.credentials.createSsl(Buffer.from(relay.ca)), {
    'grpc.ssl_target_name_override': host,
    'grpc.default_authority': host,
  }) as unknown as EchoClient
}

function say(client: EchoClient, message: string, payload?: Buffer): Promise<{ reply: EchoReply; trailers: grpc.Metadata; status: grpc.StatusObject }> {
  return new Promise((resolve, reject) => {
    let reply: EchoReply | undefined
    let failed: grpc.ServiceError | null = null
    const call = client.Say({ message, ...(payload ? { payload } : {}) }, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err, value) => {
      failed = err
      reply = value
    })
    call.on('status', (status: grpc.StatusObject) => {
      if (failed) reject(failed)
      else resolve({ reply: reply!, trailers: status.metadata, status })
    })
  })
}

describe('gRPC through gw http --upstream-protocol http2', () => {
  let dir: string
  let pkg: grpc.GrpcObject
  let upstream: Awaited<ReturnType<typeof startGrpcServer>>
  let relay: RelayProcess
  let agent: Spawned
  let client: EchoClient
  let host: string

  before(async () => {
    dir = tempDir('gw-grpc-')
    pkg = loadEcho(dir)
    upstream = await startGrpcServer(pkg)
    relay = await startRelayProcess(dir)
    agent = spawnGw(['http', String(upstream.port), '--upstream-protocol', 'http2', '--relay', `http://127.0.0.1:${relay.httpPort}`,
      '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
    const tunnel = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"') && l.includes('https://'))) as { url: string }
    host = new URL(tunnel.url).hostname
    client = echoClient(pkg, relay, host)
  })

  after(async () => {
    client?.close()
    agent?.kill()
    await agent?.exited
    relay?.gw.kill()
    await relay?.gw.exited
    await upstream?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a unary call gets its reply, status OK and the trailing metadata', async () => {
    const { reply, trailers, status } = await say(client, 'hello')
    assert.equal(status.code, grpc.status.OK)
    assert.equal(reply.message, 'echo: hello')
    assert.deepEqual(trailers.get('x-echo-trailer'), ['said hello'])
  })

  it('a failed call carries its grpc-status and message', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => client.Fail({ message: 'x' }, (e) => resolve(e!)))
    assert.equal(err.code, grpc.status.NOT_FOUND)
    assert.equal(err.details, 'no such thing')
  })

  it('a server-streaming call streams: each reply reaches the client before the server sends the next', async () => {
    const call = client.Count({ n: 4 })
    const got: EchoReply[] = []
    let status: grpc.StatusObject | undefined
    call.on('data', (r: EchoReply) => got.push(r))
    call.on('status', (s: grpc.StatusObject) => (status = s))
    call.on('error', () => {})
    for (let i = 1; i <= 4; i++) {
      await waitFor(() => got.length === i, 15_000, `reply ${i}`)
      assert.equal(got[i - 1]!.message, `reply ${i}`)
      if (i < 4) {
        await waitFor(() => upstream.release.length > 0, 15_000, 'the server waiting')
        upstream.release.shift()!()
      }
    }
    await waitFor(() => status !== undefined, 15_000, 'the status')
    assert.equal(status!.code, grpc.status.OK)
    assert.deepEqual(status!.metadata.get('x-count'), ['4'])
  })

  it('carries a 2 MiB message each way, and 20 calls at once on one channel', async () => {
    const payload = Buffer.alloc(2 * 1024 * 1024)
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff
    const big = await say(client, 'big', payload)
    assert.equal(Buffer.compare(big.reply.payload, payload), 0)

    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => say(client, `n${i}`)))
    many.forEach((r, i) => assert.equal(r.reply.message, `echo: n${i}`))
  })
})

describe('gRPC from a v3 config file', () => {
  it('gw start with upstream: {protocol: http2} serves a unary call; a bad protocol is refused with the value', async () => {
    const dir = tempDir('gw-grpc-config-')
    const pkg = loadEcho(dir)
    const upstream = await startGrpcServer(pkg)
    const relay = await startRelayProcess(dir)
    const config = join(dir, 'gw.yml')
    writeFileSync(config, `version: 3
agent:
  connect_url: http://127.0.0.1:${relay.httpPort}
endpoints:
  - name: grpc
    url: grpc-echo
    upstream: { url: ${upstream.port}, protocol: http2 }
`)
    const agent = spawnGw(['start', '--all', '--config', config, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'])
    try {
      await agent.waitForLine((l) => l.includes('"started tunnel"'))
      const client = echoClient(pkg, relay, 'grpc-echo.localhost')
      const { reply, status } = await say(client, 'from config')
      client.close()
      assert.equal(status.code, grpc.status.OK)
      assert.equal(reply.message, 'echo: from config')

      writeFileSync(join(dir, 'bad.yml'), `version: 3\nendpoints:\n  - {name: g, upstream: {url: ${upstream.port}, protocol: http3}}\n`)
      const bad = await runGw(['start', '--all', '--config', join(dir, 'bad.yml'), '--no-tui', '--inspect-addr', '127.0.0.1:0'])
      assert.notEqual(bad.code, 0)
      assert.match(bad.stderr, /upstream\.protocol "http3": give http1 \(the default\) or http2/)
      const flag = await runGw(['http', String(upstream.port), '--upstream-protocol', 'h2', '--no-tui'])
      assert.equal(flag.code, 2)
      assert.match(flag.stderr, /--upstream-protocol "h2": give http1 \(the default\) or http2/)
    } finally {
      agent.kill()
      await agent.exited
      relay.gw.kill()
      await relay.gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

function runGw(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [GW_BIN, ...args], { env: { ...process.env, NO_COLOR: '1', GW_CONFIG: '/nonexistent/gw.yml' } }, (err, stdout, stderr) => {
      // oclif wraps messages at the terminal width with ' ›   ' continuation lines.
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr: stderr.replace(/\s*\n ›\s+/g, ' ').replace(/^ ›\s+/gm, '') })
    })
  })
}
