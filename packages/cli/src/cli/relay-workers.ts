/**
 * `gw relay --workers N`: N relay processes behind one listener (node:cluster; the primary
 * accepts and hands connections to the workers in turn). Each worker is a whole relay and
 * one member of a cluster: it holds the agents that landed on it, and forwards requests
 * for the others' agents over the relay-to-relay link, as between machines. The cluster
 * shares its state in Redis (`--redis`), or without it in the primary (the relay's
 * ClusterState, reached over IPC, names.json in the state directory). The primary runs no
 * relay: it starts the workers, passes SIGTERM, SIGINT and SIGHUP on to them (SIGHUP to a
 * worker still starting once it is up), starts a new worker when one dies, and exits once
 * they have all stopped after a signal. A worker that fails before it is ready (Redis down, a port
 * taken) stops the whole relay with its exit code, rather than being restarted forever.
 */
import cluster, { type Worker } from 'node:cluster'
import { serveClusterState, type ClusterState } from '@gw/relay'

type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

const READY = 'gw-relay-worker-ready'

export function isRelayWorker(): boolean {
  return cluster.isWorker
}

/** In a worker: its number (node:cluster's id: 1, 2, …; a restarted worker gets the next), for its log lines. */
export function workerId(): number | undefined {
  return cluster.worker?.id
}

/** In a worker: tell the primary the relay is up. */
export function reportReady(): void {
  if (cluster.isWorker) process.send?.({ type: READY })
}

/** In a worker whose relay has stopped: let go of the primary, so the process can end. */
export function leaveWorker(): void {
  if (cluster.isWorker) cluster.worker?.disconnect()
}

export interface SuperviseOptions {
  /** Without --redis: the shared state the primary keeps and answers the workers from (cluster/state.ts). */
  state?: ClusterState
  /** Added to each worker's environment. */
  env?: Record<string, string>
}

/** In the primary: run `count` workers until a signal stops them; resolves with the exit code. */
export function superviseWorkers(count: number, log: Log, options: SuperviseOptions = {}): Promise<number> {
  const done = new Promise<number>((resolve) => {
    const workers = new Set<Worker>()
    const readyWorkers = new Set<Worker>()
    const hupLater = new Set<Worker>()
    let stopping = false
    let exitCode = 0
    let ready = 0
    const start = (): void => {
      const worker = cluster.fork(options.env)
      let isReady = false
      workers.add(worker)
      if (options.state) serveClusterState(options.state, worker)
      worker.on('message', (message: { type?: unknown }) => {
        if (message?.type !== READY || isReady) return
        isReady = true
        readyWorkers.add(worker)
        if (hupLater.delete(worker)) worker.process.kill('SIGHUP')
        if (++ready === count) log('info', 'relay workers ready', { workers: count })
      })
      worker.on('exit', (code, signal) => {
        workers.delete(worker)
        readyWorkers.delete(worker)
        hupLater.delete(worker)
        if (!isReady && !stopping) {
          // It never came up: another would fail the same way.
          log('error', 'a relay worker failed to start; stopping', { pid: worker.process.pid, code, signal })
          exitCode = code ?? 1
          stop('SIGTERM')
        } else if (!stopping) {
          log('warn', 'a relay worker exited; starting another', { pid: worker.process.pid, code, signal })
          setTimeout(start, 250).unref()
        }
        if (stopping && workers.size === 0) resolve(exitCode)
      })
    }
    const stop = (signal: NodeJS.Signals): void => {
      stopping = true
      for (const worker of workers) worker.process.kill(signal)
      if (workers.size === 0) resolve(exitCode)
    }
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => stop(signal))
    // To workers that are up; one still starting gets it once it is (SIGHUP's default
    // action would end it, and it may have read the files before they changed).
    process.on('SIGHUP', () => {
      for (const worker of workers) {
        if (readyWorkers.has(worker)) worker.process.kill('SIGHUP')
        else hupLater.add(worker)
      }
    })
    for (let i = 0; i < count; i++) start()
  })
  // names.json and tcp-ports.json written before the primary exits.
  return options.state ? done.then(async (code) => (await options.state!.flush(), code)) : done
}
