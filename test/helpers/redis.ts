/**
 * A real Redis for the cluster tests: redis-server on a free 127.0.0.1 port, with no
 * persistence (`--save '' --appendonly no`), started and stopped by the test. Stopping
 * and starting it again on the same port is a Redis restart that lost its data.
 *
 * Debian package `redis-server` (scripts/setup-system.sh); tests skip when it is missing.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { freePort } from './stack.js'

export const REDIS_SKIP: string | false = spawnSync('redis-server', ['--version']).error
  ? 'redis-server is not installed (scripts/setup-system.sh installs the Debian package redis-server)'
  : false

export interface RedisServer {
  port: number
  url: string
  /** Stop it (SIGKILL by default: a crash); `start()` brings it back on the same port, empty. */
  stop(signal?: NodeJS.Signals): Promise<void>
  start(): Promise<void>
  /** Run redis-cli against it; returns stdout, trimmed. */
  cli(...args: string[]): string
  close(): Promise<void>
}

export interface RedisStartOptions {
  /** Serve TLS only, with this certificate (tls.ts of this file makes one): the URL is rediss://. */
  tls?: TestTls
  /** Serve a replica of the Redis on this port. */
  replicaOf?: number
  /** Run as a sentinel watching the master on this port, under the name `mymaster`, in `dir`. */
  sentinelFor?: { port: number; dir: string }
}

export async function startRedis(options: RedisStartOptions = {}): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const tls = options.tls
  const cliArgs = tls ? ['--tls', '--cacert', tls.caPath, '-p', String(port)] : ['-p', String(port)]
  const args = tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.certPath, '--tls-key-file', tls.keyPath, '--tls-ca-cert-file', tls.caPath, '--tls-auth-clients', 'no']
    : ['--port', String(port)]
  if (options.replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(options.replicaOf))
  let command = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning', ...args]
  if (options.sentinelFor) {
    // A sentinel rewrites its config file: one of its own per run.
    const conf = join(options.sentinelFor.dir, `sentinel-${port}.conf`)
    writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `sentinel monitor mymaster 127.0.0.1 ${options.sentinelFor.port} 1`,
      'sentinel down-after-milliseconds mymaster 1000', 'sentinel failover-timeout mymaster 10000', ''].join('\n'))
    command = [conf, '--sentinel', '--loglevel', 'warning']
  }
  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', command, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let out = ''
    createInterface({ input: proc.stdout! }).on('line', (l) => { out += `${l}\n` })
    proc.stderr!.on('data', (d: Buffer) => { out += d.toString() })
    const end = Date.now() + 10_000
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}):\n${out}`)
      const ping = spawnSync('redis-cli', [...cliArgs, 'ping'], { encoding: 'utf8' })
      if (ping.stdout?.trim() === 'PONG') return
      if (Date.now() > end) throw new Error(`redis-server did not answer on ${port}:\n${out}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const stop = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill(signal)
    await exited
  }
  await start()
  return {
    port,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    stop,
    start,
    cli: (...args) => spawnSync('redis-cli', [...cliArgs, ...args], { encoding: 'utf8' }).stdout.trim(),
    close: () => stop(),
  }
}

export interface TestTls {
  caPath: string
  caPem: string
  certPath: string
  keyPath: string
}

/**
 * A per-run CA and a certificate it signed for 127.0.0.1 and localhost, made with the
 * openssl command line (the Debian package), in `dir`.
 */
export function makeTestTls(dir: string): TestTls {
  const file = (name: string): string => join(dir, name)
  const run = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' })
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=gw test Redis CA')
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('redis.key'), '-out', file('redis.csr'), '-subj', '/CN=127.0.0.1')
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  run('x509', '-req', '-in', file('redis.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('redis.pem'), '-days', '2', '-extfile', file('san.ext'))
  return { caPath: file('ca.pem'), caPem: readFileSync(file('ca.pem'), 'utf8'), certPath: file('redis.pem'), keyPath: file('redis.key') }
}
