/**
 * A real Redis for the cluster tests: redis-server on a free 127.0.0.1 port, with no
 * persistence (`--save '' --appendonly no`), started and stopped by the test. Stopping
 * and starting it again on the same port is a Redis restart that lost its data.
 *
 * Debian package `redis-server` (scripts/setup-system.sh); tests skip when it is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
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

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let out = ''
    createInterface({ input: proc.stdout! }).on('line', (l) => { out += `${l}\n` })
    proc.stderr!.on('data', (d: Buffer) => { out += d.toString() })
    const end = Date.now() + 10_000
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}):\n${out}`)
      const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' })
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
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    cli: (...args) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim(),
    close: () => stop(),
  }
}
