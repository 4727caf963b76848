/**
 * tcp endpoints end to end: a real relay with a TCP port range, real agents, real
 * upstream servers and Node net clients on 127.0.0.1. Bytes both ways (1 MiB, hashed),
 * half-close, resets, an upstream that refuses, a server that speaks first, port
 * ownership across tokens and reconnects, the range and the connection limit.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { startRelay, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent, type AgentEndpointOptions } from '@gw/cli/agent/agent'
import { freePort, freePortBlock, tempDir, waitFor } from '../helpers/stack.js'
import { echo, ending, exchange, open, portOf, readBytes, sha256, startTcpServer, type TcpServer } from '../helpers/tcp.js'

const TOKEN_A = 'token-a-0123456789abcdef'
const TOKEN_B = 'token-b-0123456789abcdef'

async function relayWith(options: Partial<RelayOptions> = {}): Promise<{ relay: Relay; stateDir: string; close(): Promise<void> }> {
  const stateDir = options.stateDir ?? tempDir()
  const relay = await startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, domain: 'localhost', stateDir, tcpPorts: 'any', ...options })
  return { relay, stateDir, close: async () => { await relay.close() } }
}

function tcpAgent(relay: Relay, upstreamPort: number, endpoint: Partial<AgentEndpointOptions> = {}, authtoken?: string): Promise<Agent> {
  return startAgent({
    relay: relay.httpUrl!,
    ...(authtoken ? { authtoken } : {}),
    agentId: `agent-${authtoken ?? 'anon'}`,
    backoff: { initial: 50, max: 200 },
    endpoints: [{ proto: 'tcp', upstream: String(upstreamPort), ...endpoint }],
  })
}

describe('tcp endpoints', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  // Undone last-pushed first, so each test pushes its state dir's removal first: removed
  // before its relay closed, the relay's batched state write raced rmSync (ENOTEMPTY
  // under load, and the closes after it never ran).
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  it('carries 1 MiB each way, hashed, with half-close: the upstream answers after the client\'s FIN', async () => {
    const { relay, stateDir } = await relayWith()
    const answer = randomBytes(1024 * 1024)
    // The upstream reads everything until the client's FIN, then sends the hash of what
    // it got, a newline, and 1 MiB of its own, then its FIN.
    const upstream = await startTcpServer((socket) => {
      const chunks: Buffer[] = []
      socket.on('data', (d: Buffer) => chunks.push(d))
      socket.on('end', () => socket.end(Buffer.concat([Buffer.from(`${sha256(Buffer.concat(chunks))}\n`), answer])))
    })
    const agent = await tcpAgent(relay, upstream.port)
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close(), () => relay.close(), () => agent.close())
    const url = agent.tunnels[0]!.publicUrl
    assert.match(url, /^tcp:\/\/127\.0\.0\.1:\d+$/)
    const sent = randomBytes(1024 * 1024)
    const got = await exchange(portOf(url), sent)
    assert.equal(got.ending, 'end')
    const newline = got.received.indexOf(10)
    assert.equal(got.received.subarray(0, newline).toString(), sha256(sent), 'the upstream got the client\'s 1 MiB intact')
    assert.equal(sha256(got.received.subarray(newline + 1)), sha256(answer), 'the client got the upstream\'s 1 MiB intact')
    await waitFor(() => relay.openStreams() === 0, 5000, 'streams back to 0')
  })

  it('a server that speaks first (an SSH-like banner) and a line-by-line echo session', async () => {
    const { relay, stateDir } = await relayWith()
    const upstream = await startTcpServer((socket) => {
      socket.write('SSH-2.0-gwtest_1.0\r\n')
      let buffered = ''
      socket.on('data', (d: Buffer) => {
        buffered += d.toString()
        let nl
        while ((nl = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, nl)
          buffered = buffered.slice(nl + 1)
          socket.write(`echo: ${line}\n`)
        }
      })
      socket.on('end', () => socket.end('bye\n'))
    })
    const agent = await tcpAgent(relay, upstream.port)
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close(), () => relay.close(), () => agent.close())
    const socket = await open(portOf(agent.tunnels[0]!.publicUrl))
    const banner = await readBytes(socket, 'SSH-2.0-gwtest_1.0\r\n'.length)
    assert.equal(banner.toString(), 'SSH-2.0-gwtest_1.0\r\n', 'the banner arrives before the client sends anything')
    for (const line of ['one', 'two', 'three']) {
      socket.write(`${line}\n`)
      assert.equal((await readBytes(socket, `echo: ${line}\n`.length)).toString(), `echo: ${line}\n`)
    }
    const how = ending(socket)
    const rest = readBytes(socket, 4)
    socket.end()
    assert.equal((await rest).toString(), 'bye\n', 'the upstream still writes after the client\'s FIN')
    assert.equal(await how, 'end')
  })

  it('an upstream that refuses: the client\'s connection is closed, the relay and the agent go on', async () => {
    const { relay, stateDir } = await relayWith()
    const dead = await freePort()
    const agent = await tcpAgent(relay, dead)
    const upstream = await startTcpServer(echo)
    const good = await tcpAgent(relay, upstream.port)
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close(), () => relay.close(), () => good.close(), () => agent.close())
    const port = portOf(agent.tunnels[0]!.publicUrl)
    for (let i = 0; i < 20; i++) {
      const got = await exchange(port, 'hello?', { keepOpen: true })
      assert.equal(got.received.length, 0)
      assert.ok(['ECONNRESET', 'end', 'close'].includes(got.ending), got.ending)
    }
    assert.equal(relay.agentCount, 2)
    assert.equal(agent.status().status, 'online')
    const ok = await exchange(portOf(good.tunnels[0]!.publicUrl), 'still here')
    assert.equal(ok.received.toString(), 'still here')
    await waitFor(() => relay.openStreams() === 0, 5000, 'streams back to 0')
  })

  it('resets propagate both ways', async () => {
    const { relay, stateDir } = await relayWith()
    let upstreamEnding: Promise<string> | undefined
    const upstream = await startTcpServer((socket) => {
      socket.once('data', (d: Buffer) => {
        if (d.toString() === 'reset me') socket.resetAndDestroy()
        else upstreamEnding = ending(socket)
      })
    })
    const agent = await tcpAgent(relay, upstream.port)
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close(), () => relay.close(), () => agent.close())
    const port = portOf(agent.tunnels[0]!.publicUrl)
    // The upstream resets: the client sees a reset, not a clean end.
    const got = await exchange(port, 'reset me', { keepOpen: true })
    assert.equal(got.ending, 'ECONNRESET')
    // The client resets: the upstream sees a reset.
    const socket = await open(port)
    socket.write('hold on')
    await waitFor(() => upstreamEnding !== undefined, 5000, 'the upstream connection')
    socket.resetAndDestroy()
    assert.equal(await upstreamEnding, 'ECONNRESET')
    await waitFor(() => relay.openStreams() === 0, 5000, 'streams back to 0')
  })

  it('a relay without --tcp-ports refuses tcp endpoints with GW_ERR_TCP_DISABLED', async () => {
    const { relay, stateDir } = await relayWith({ tcpPorts: undefined })
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => relay.close())
    await assert.rejects(tcpAgent(relay, 22), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_TCP_DISABLED')
      assert.match(err.message, /--tcp-ports/)
      return true
    })
  })

  it('a port is its token\'s: refused to another token, kept across reconnects and a relay restart', async () => {
    const stateDir = tempDir()
    const httpPort = await freePort()
    const options = { stateDir, httpPort, authtokens: [TOKEN_A, TOKEN_B] }
    let { relay } = await relayWith(options)
    const upstream = await startTcpServer(echo)
    const a = await tcpAgent(relay, upstream.port, {}, TOKEN_A)
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close())
    const url = a.tunnels[0]!.publicUrl
    const port = portOf(url)
    assert.equal((await exchange(port, 'a1')).received.toString(), 'a1')

    // Token B asks for A's port, while A holds it and after A has gone.
    await assert.rejects(tcpAgent(relay, upstream.port, { remotePort: port }, TOKEN_B), { code: 'GW_ERR_TCP_PORT_TAKEN' })
    await a.close()
    await waitFor(() => relay.agentCount === 0, 5000, 'A gone')
    await assert.rejects(tcpAgent(relay, upstream.port, { remotePort: port }, TOKEN_B), { code: 'GW_ERR_TCP_PORT_TAKEN' })
    // Nobody serves the port now: connections are refused, not accepted and dropped.
    assert.equal((await exchange(port, 'x')).ending, 'ECONNREFUSED')

    // A comes back asking for it (as `--url tcp://…:PORT` does) and gets it.
    const again = await tcpAgent(relay, upstream.port, { remotePort: port }, TOKEN_A)
    assert.equal(again.tunnels[0]!.publicUrl, url)

    // The relay restarts on the same ports and state: the agent reconnects by itself to the same port.
    await relay.close()
    relay = (await relayWith(options)).relay
    cleanups.push(() => relay.close())
    await waitFor(() => again.status().status === 'online' && relay.agentCount === 1, 10_000, 'the agent to reconnect')
    assert.equal(again.tunnels[0]!.publicUrl, url)
    assert.equal((await exchange(port, 'a2')).received.toString(), 'a2')
    // Still not B's, from the state directory.
    await assert.rejects(tcpAgent(relay, upstream.port, { remotePort: port }, TOKEN_B), { code: 'GW_ERR_TCP_PORT_TAKEN' })
    await again.close()
  })

  it('a range: ports inside it, refused outside it, exhausted when full, reserved ports for their token only', async () => {
    // Three consecutive free ports for the range (below the ephemeral range: freePortBlock).
    const min = await freePortBlock(3)
    const { hashToken } = await import('@gw/relay')
    const { relay, stateDir } = await relayWith({
      tcpPorts: { min, max: min + 2 },
      tokens: [
        { label: 'a', digest: hashToken(TOKEN_A), names: [], tcpPorts: [min + 2], limits: {} },
        { label: 'b', digest: hashToken(TOKEN_B), names: [], tcpPorts: [], limits: {} },
      ],
    })
    const upstream = await startTcpServer(echo)
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close(), () => relay.close())
    await assert.rejects(tcpAgent(relay, upstream.port, { remotePort: min + 3 }, TOKEN_B), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GW_ERR_TCP_PORT_UNAVAILABLE')
      assert.match(err.message, new RegExp(`ports ${min}-${min + 2}`))
      return true
    })
    await assert.rejects(tcpAgent(relay, upstream.port, { remotePort: min + 2 }, TOKEN_B), { code: 'GW_ERR_TCP_PORT_TAKEN' })
    // B gets the two ports that are not A's reserved one, then the range is full for B.
    const b1 = await tcpAgent(relay, upstream.port, {}, TOKEN_B)
    const b2 = await tcpAgent(relay, upstream.port, {}, TOKEN_B)
    const ports = [b1, b2].map((x) => portOf(x.tunnels[0]!.publicUrl)).sort()
    assert.deepEqual(ports, [min, min + 1])
    await assert.rejects(tcpAgent(relay, upstream.port, {}, TOKEN_B), { code: 'GW_ERR_TCP_PORTS_EXHAUSTED' })
    // A's random port is its reserved one.
    const a = await tcpAgent(relay, upstream.port, {}, TOKEN_A)
    assert.equal(portOf(a.tunnels[0]!.publicUrl), min + 2)
    assert.equal((await exchange(min + 2, 'reserved')).received.toString(), 'reserved')
    for (const x of [a, b1, b2]) await x.close()
  })

  it('--tcp-max-connections: connections past the limit are reset, the others carry on', async () => {
    const { relay, stateDir } = await relayWith({ tcpMaxConnections: 2, metricsAddr: '127.0.0.1:0' })
    const upstream: TcpServer = await startTcpServer(echo)
    const agent = await tcpAgent(relay, upstream.port)
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close(), () => relay.close(), () => agent.close())
    const port = portOf(agent.tunnels[0]!.publicUrl)
    const first = await open(port)
    const second = await open(port)
    first.write('1')
    second.write('2')
    assert.equal((await readBytes(first, 1)).toString(), '1')
    assert.equal((await readBytes(second, 1)).toString(), '2')
    const third = await exchange(port, 'three', { keepOpen: true })
    assert.equal(third.received.length, 0)
    assert.equal(third.ending, 'ECONNRESET')
    first.write('still')
    assert.equal((await readBytes(first, 5)).toString(), 'still')
    const closed = ending(first)
    first.end()
    await closed
    await waitFor(async () => (await exchange(port, 'again')).received.toString() === 'again', 5000, 'a slot to free up')
    second.destroy()
    // The relay's metrics: connections by result, bytes, and the limit hit.
    const metric = async (re: RegExp): Promise<number> => Number(re.exec(await (await fetch(relay.metricsUrl!)).text())?.[1] ?? NaN)
    await waitFor(async () => (await metric(/^gw_relay_tcp_connections_total\{proto="tcp",result="ok"\} (\d+)$/m)) >= 2, 5000, 'ok connections counted')
    assert.ok((await metric(/^gw_relay_tcp_connections_total\{proto="tcp",result="refused"\} (\d+)$/m)) >= 1)
    assert.ok((await metric(/^gw_relay_tcp_bytes_total\{proto="tcp",direction="in"\} (\d+)$/m)) >= 'still'.length + 1)
    assert.ok((await metric(/^gw_relay_limit_hits_total\{token="anonymous",limit="tcp_connections"\} (\d+)$/m)) >= 1)
  })
})

describe('on_tcp_connect on tcp endpoints', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  async function withPolicy(inline: unknown): Promise<{ port: number; logs: Array<{ msg: string; fields: Record<string, unknown> }>; upstream: TcpServer }> {
    const { compileEndpointPolicy } = await import('@gw/cli/endpoint-policy')
    const { AgentEvents } = await import('@gw/cli/agent/events')
    const { relay, stateDir } = await relayWith()
    const upstream = await startTcpServer(echo)
    const events = new AgentEvents()
    const logs: Array<{ msg: string; fields: Record<string, unknown> }> = []
    events.on('log', (l) => logs.push(l))
    const policy = compileEndpointPolicy({ inline, kind: 'tcp', events, endpoint: 'db' })
    const agent = await startAgent({ relay: relay.httpUrl!, events, endpoints: [{ name: 'db', proto: 'tcp', upstream: String(upstream.port), ...(policy ? { policy } : {}) }] })
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => upstream.close(), () => relay.close(), () => agent.close())
    return { port: portOf(agent.tunnels[0]!.publicUrl), logs, upstream }
  }

  it('restrict-ips: a client outside allow (or inside deny) is closed before the upstream is dialled', async () => {
    const denied = await withPolicy({ on_tcp_connect: [{ actions: [{ type: 'restrict-ips', config: { allow: ['203.0.113.0/24'] } }] }] })
    const got = await exchange(denied.port, 'let me in', { keepOpen: true })
    assert.equal(got.received.length, 0)
    assert.equal(got.ending, 'ECONNRESET')
    assert.equal(denied.upstream.accepted.length, 0, 'the upstream never saw the connection')
    assert.ok(denied.logs.some((l) => l.msg === 'connection closed by the traffic policy' && l.fields.action === 'restrict-ips'))

    const allowed = await withPolicy({ on_tcp_connect: [{ actions: [{ type: 'restrict-ips', config: { allow: ['127.0.0.0/8'], deny: ['10.0.0.0/8'] } }] }] })
    assert.equal((await exchange(allowed.port, 'welcome')).received.toString(), 'welcome')
  })

  it('deny by expression, and log with conn.* interpolated; enforce: false only records', async () => {
    const p = await withPolicy({
      on_tcp_connect: [
        { actions: [{ type: 'log', config: { metadata: { who: '${conn.client_ip}', endpoint: '${endpoint.url}' } } }] },
        { actions: [{ type: 'restrict-ips', config: { enforce: false, deny: ['127.0.0.0/8'] } }] },
        { expressions: ['actions.ngrok.restrict_ips.allowed == false && conn.client_port > 0'], actions: [{ type: 'log', config: { message: 'would have been denied' } }] },
        { expressions: ["conn.client_ip == '192.0.2.1'"], actions: [{ type: 'deny' }] },
      ],
    })
    assert.equal((await exchange(p.port, 'dry run')).received.toString(), 'dry run')
    const line = p.logs.find((l) => l.msg === 'policy log')
    assert.equal(line?.fields.who, '127.0.0.1')
    assert.equal(line?.fields.endpoint, `tcp://127.0.0.1:${p.port}`)
    assert.ok(p.logs.some((l) => l.msg === 'would have been denied'))

    const d = await withPolicy({ on_tcp_connect: [{ expressions: ["conn.client_ip.startsWith('127.')"], actions: [{ type: 'deny' }] }] })
    assert.equal((await exchange(d.port, 'x', { keepOpen: true })).ending, 'ECONNRESET')
    const c = await withPolicy({ on_tcp_connect: [{ actions: [{ type: 'close-connection' }] }] })
    assert.equal((await exchange(c.port, 'x', { keepOpen: true })).ending, 'ECONNRESET')
    assert.equal(c.upstream.accepted.length, 0)
  })

  it('HTTP phases are refused on a tcp endpoint, with the reason', async () => {
    const { compileEndpointPolicy } = await import('@gw/cli/endpoint-policy')
    const { AgentEvents } = await import('@gw/cli/agent/events')
    assert.throws(
      () => compileEndpointPolicy({ inline: { on_http_request: [{ actions: [{ type: 'deny' }] }] }, kind: 'tcp', events: new AgentEvents(), endpoint: 'db' }),
      /on_http_request: is not supported on a tcp endpoint: its connections carry no HTTP gw reads; use on_tcp_connect/,
    )
    assert.throws(
      () => compileEndpointPolicy({ inline: { on_tcp_connect: [{ actions: [{ type: 'basic-auth', config: { credentials: ['a:b'] } }] }] }, kind: 'tcp', events: new AgentEvents(), endpoint: 'db' }),
      /basic-auth cannot run in on_tcp_connect/,
    )
  })
})
