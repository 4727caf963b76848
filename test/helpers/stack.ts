/**
 * A real relay, a real agent and a real upstream on 127.0.0.1, each on port 0, for
 * end-to-end tests. Nothing is mocked: requests go through sockets, TLS (with a CA
 * made for the run) and the yamux multiplexer.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { startRelay, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent, type AgentOptions } from '@gw/cli/agent/agent'

export const GW_BIN = fileURLToPath(new URL('../../../packages/cli/bin/run.js', import.meta.url))

export function tempDir(prefix = 'gw-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void

export interface Upstream {
  server: Server
  port: number
  url: string
  close(): Promise<void>
}

export async function startUpstream(handler: Handler, host = '127.0.0.1'): Promise<Upstream> {
  const server = createServer({ keepAliveTimeout: 10_000, maxHeaderSize: 1024 * 1024 }, handler)
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const port = (server.address() as AddressInfo).port
  return {
    server,
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

export interface Stack {
  relay: Relay
  agent: Agent
  upstream: Upstream
  /** The public name the agent got. */
  name: string
  /** Host header for the tunnel. */
  host: string
  /** http://127.0.0.1:<relay http port> */
  httpOrigin: string
  httpsOrigin: string
  close(): Promise<void>
}

export async function startStack(
  handler: Handler,
  options: { relay?: Partial<RelayOptions>; agent?: Partial<AgentOptions>; upstreamHost?: string } = {},
): Promise<Stack> {
  const upstream = await startUpstream(handler, options.upstreamHost)
  const stateDir = tempDir()
  const relay = await startRelay({
    host: '127.0.0.1',
    httpPort: 0,
    httpsPort: 0,
    domain: 'localhost',
    stateDir,
    ...options.relay,
  })
  const agent = await startAgent({
    relay: relay.httpUrl!,
    endpoints: [{ upstream: upstream.url }],
    ...options.agent,
  })
  const name = agent.tunnels[0]!.publicName
  return {
    relay,
    agent,
    upstream,
    name,
    host: `${name}.localhost`,
    httpOrigin: relay.httpUrl!,
    httpsOrigin: relay.httpsUrl!,
    close: async () => {
      await agent.close()
      await relay.close()
      await upstream.close()
      rmSync(stateDir, { recursive: true, force: true })
    },
  }
}

/** Poll until `check` is true, or fail after `ms` (correctness bound, not a speed test). */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export interface Spawned {
  child: ChildProcess
  /** Every stdout line so far. */
  lines: string[]
  /** Wait for a stdout line matching `test`; returns it. */
  waitForLine(test: (line: string) => boolean, ms?: number): Promise<string>
  /** Resolves with the exit code. */
  exited: Promise<number | null>
  stderr(): string
  kill(signal?: NodeJS.Signals): void
}

/** Run the real `gw` binary. */
export function spawnGw(args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(process.execPath, [GW_BIN, ...args], {
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  let err = ''
  const waiters: Array<{ test: (l: string) => boolean; resolve: (l: string) => void }> = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line)
    for (const w of [...waiters]) {
      if (w.test(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    child,
    lines,
    exited,
    // oclif wraps messages at the terminal width with ' ›   ' continuation lines.
    stderr: () => err.replace(/\s*\n ›\s+/g, ' ').replace(/^ ›\s+/gm, ''),
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal)
    },
    waitForLine: (test, ms = 15_000) => {
      const found = lines.find(test)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching line within ${ms} ms; stdout:\n${lines.join('\n')}\nstderr:\n${err}`)), ms)
        waiters.push({ test, resolve: (l) => { clearTimeout(timer); resolve(l) } })
        void exited.then((code) => {
          clearTimeout(timer)
          reject(new Error(`gw exited (${code}) before the line appeared; stdout:\n${lines.join('\n')}\nstderr:\n${err}`))
        })
      })
    },
  }
}

/** The fields of `gw relay`'s "relay started" line (--log-format json) that the tests read. */
export interface RelayStarted {
  http_port: number
  https_port: number | null
  /** The generated CA's PEM file. */
  ca: string
  metrics?: string
  custom_domains?: boolean
  [field: string]: unknown
}

export interface SpawnedRelay extends Spawned {
  /** The first "relay started" line. */
  started: RelayStarted
  httpPort: number
  httpsPort: number | null
  /** `http://<host>:<http port>` */
  url: string
  /** `signal` (SIGTERM) if it still runs, then its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export interface SpawnRelayOptions {
  /**
   * `--workers`, 1 unless given: most tests check one process. `null` leaves the flag out,
   * for gw relay's own default (one per core, or one with the features that are one
   * process's). With N > 1 the helper waits for every worker's "relay started" line.
   */
  workers?: number | null
  /** A relay config file (`--config`), instead of the flags below. */
  config?: string
  domain?: string
  host?: string
  httpPort?: number
  /** -1 (off) unless given; 0 for any free port. */
  httpsPort?: number
  /** `--state-dir`; required unless `config` is given. */
  stateDir?: string
  /** More flags, after the others. */
  args?: string[]
  env?: Record<string, string>
  /** How long to wait for the start, in ms (waitForLine's default unless given). */
  timeout?: number
}

/**
 * Run the real `gw relay` with JSON logs, as the README does on a server: by default
 * `--workers 1 --domain localhost --host 127.0.0.1 --http-port 0 --https-port -1`, and wait
 * until it says it started. A relay that does not start is stopped before the error is
 * thrown, so a caller cleans up only a relay it got.
 */
export async function spawnRelay(options: SpawnRelayOptions): Promise<SpawnedRelay> {
  const { workers = 1, host = '127.0.0.1' } = options
  const where = options.config !== undefined
    ? ['--config', options.config]
    : ['--domain', options.domain ?? 'localhost', '--host', host, '--http-port', String(options.httpPort ?? 0), '--https-port', String(options.httpsPort ?? -1), '--state-dir', options.stateDir ?? fail('spawnRelay: stateDir or config')]
  const proc = spawnGw(['relay', ...(workers === null ? [] : ['--workers', String(workers)]), ...where, ...(options.args ?? []), '--log-format', 'json'], options.env)
  let started: RelayStarted
  try {
    const line = await proc.waitForLine((l) => l.includes('"relay started"'), options.timeout)
    if (workers !== null && workers > 1) {
      await waitFor(() => proc.lines.filter((l) => l.includes('"relay started"')).length >= workers, options.timeout ?? 30_000, `${workers} workers started`)
    }
    started = JSON.parse(line) as RelayStarted
  } catch (err) {
    proc.kill('SIGKILL')
    await proc.exited
    throw err
  }
  return {
    ...proc,
    started,
    httpPort: started.http_port,
    httpsPort: started.https_port,
    url: `http://${host}:${started.http_port}`,
    stop: async (signal) => {
      proc.kill(signal)
      return proc.exited
    },
  }
}

function fail(message: string): never {
  throw new Error(message)
}

/** A free TCP port on 127.0.0.1 (for a process that must come back on the same port). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!
}

/** The lowest port of the kernel's ephemeral range (Linux: 32768 unless configured). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) ? low : 32768
  } catch {
    return 32768
  }
}

function tryListen(port: number, host = '127.0.0.1'): Promise<NetServer | undefined> {
  return new Promise((resolve) => {
    const server = createNetServer()
    server.once('error', () => resolve(undefined))
    server.listen({ port, host, exclusive: true }, () => resolve(server))
  })
}

async function canListen(port: number, host: string): Promise<boolean> {
  const server = await tryListen(port, host)
  if (server) await new Promise((resolve) => server.close(resolve))
  return server !== undefined
}

/**
 * The first of `count` consecutive ports free on every one of `hosts` (a relay's tcp port
 * range; two relays as two machines on 127.0.0.1 and 127.0.0.2), below the kernel's
 * ephemeral range for the reason `freePorts` gives.
 */
export async function freePortBlock(count: number, hosts: string[] = ['127.0.0.1']): Promise<number> {
  const low = ephemeralLow()
  for (let tries = 0; tries < 200; tries++) {
    const base = 10_000 + Math.floor(Math.random() * (low - 10_000 - count))
    let ok = true
    for (let port = base; port < base + count && ok; port++) {
      for (const host of hosts) if (ok) ok = await canListen(port, host)
    }
    if (ok) return base
  }
  throw new Error(`no ${count} consecutive free ports below ${low}`)
}

/**
 * `n` distinct free ports on 127.0.0.1 for processes a test starts on given ports
 * (pebble, a relay that must come back on its port), all held while they are picked.
 * Taken below the kernel's ephemeral range: a port from listen(0) is an ephemeral one,
 * which any outgoing connection on the machine may take before the process binds it
 * (pebble's management port "address already in use", a flake under load).
 */
export async function freePorts(n: number): Promise<number[]> {
  const low = ephemeralLow()
  const servers: NetServer[] = []
  try {
    for (let tries = 0; servers.length < n; tries++) {
      if (low <= 12_000 || tries > 1_000) {
        // No room below the range: an ephemeral port, as listen(0) gives.
        const server = (await tryListen(0))!
        servers.push(server)
        continue
      }
      const server = await tryListen(10_000 + Math.floor(Math.random() * (low - 10_000)))
      if (server) servers.push(server)
    }
    return servers.map((server) => (server.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  }
}
