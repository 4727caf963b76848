/**
 * `gw relay --workers N` without Redis: the workers share their state through the primary
 * process (state.ts) over node:cluster IPC. A worker's IpcBackend sends each call as
 * `{ gwCluster: 'call', id, op, args }` and waits for `{ gwCluster: 'reply', id, ... }`
 * (at most CALL_TIMEOUT_MS, then the call fails and the cluster code treats the shared
 * state as away, as it does Redis); publishes come to every worker as
 * `{ gwCluster: 'publish', channel, message }`. `serveClusterState` is the primary's
 * side, one per worker: it answers the calls and, when the worker exits, drops the
 * worker's presence at once.
 */
import { RelayError } from '../errors.js'
import type { AcmeBegin, ClaimResult, ClusterBackend, Kind, Located, PresenceKind, RelayRecord } from './backend.js'
import type { ClusterState } from './state.js'

/** A call the primary has not answered in this long fails. */
export const CALL_TIMEOUT_MS = 2_000

/** The calls a worker may make: ClusterState's methods of the same names. */
const OPS = ['owners', 'ownerOf', 'claim', 'touch', 'forget', 'announce', 'withdraw', 'refresh', 'live', 'locate', 'relays', 'leave', 'rate', 'readConfig', 'writeConfig', 'publish',
  'acmeChallengeSet', 'acmeChallengeGet', 'acmeChallengeDelete', 'acmeCerts', 'acmeCertGet', 'acmeCertSet', 'acmeCertDelete', 'acmeAccountKey', 'acmeBegin', 'acmeLocked', 'acmeEnd'] as const
type Op = (typeof OPS)[number]

interface CallMessage { gwCluster: 'call'; id: number; op: Op; args: unknown[] }
interface ReplyMessage { gwCluster: 'reply'; id: number; ok: boolean; value?: unknown; error?: string }
interface PublishMessage { gwCluster: 'publish'; channel: string; message: string }

/** What the primary sees of one worker (node:cluster's Worker is one). */
export interface IpcPeer {
  send(message: unknown): unknown
  on(event: 'message', listener: (message: unknown) => void): unknown
  on(event: 'exit', listener: () => void): unknown
}

/** What a worker sees of the primary (its `process`). */
interface IpcParent {
  send?: ((message: unknown) => unknown) | undefined
  on(event: 'message', listener: (message: unknown) => void): unknown
  off(event: 'message', listener: (message: unknown) => void): unknown
}

export class IpcBackend implements ClusterBackend {
  readonly describe = 'the primary process'
  private nextId = 1
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void; timer: NodeJS.Timeout }>()
  private readonly handlers = new Map<string, Array<(message: string) => void>>()
  private readonly listener = (raw: unknown): void => this.onMessage(raw)
  private closed = false

  private constructor(private readonly parent: IpcParent, private readonly timeoutMs: number) {
    parent.on('message', this.listener)
  }

  /** In a worker of `gw relay --workers`: the primary's state; GW_ERR_RELAY_WORKER_STATE in any other process. */
  static connect(parent: IpcParent = process, timeoutMs = CALL_TIMEOUT_MS): IpcBackend {
    if (typeof parent.send !== 'function') {
      throw new RelayError('GW_ERR_RELAY_WORKER_STATE', 'a relay cluster without --redis shares its state through the primary process of `gw relay --workers`, and this process has none; give --redis, or run it as gw relay --workers N')
    }
    return new IpcBackend(parent, timeoutMs)
  }

  private onMessage(raw: unknown): void {
    const message = raw as { gwCluster?: unknown; id?: unknown; ok?: unknown; value?: unknown; error?: unknown; channel?: unknown; message?: unknown } | null
    if (message?.gwCluster === 'reply' && typeof message.id === 'number') {
      const call = this.pending.get(message.id)
      if (!call) return
      this.pending.delete(message.id)
      clearTimeout(call.timer)
      if (message.ok) call.resolve(message.value)
      else call.reject(new Error(typeof message.error === 'string' ? message.error : 'the primary process refused the call'))
    } else if (message?.gwCluster === 'publish' && typeof message.channel === 'string' && typeof message.message === 'string') {
      for (const handler of this.handlers.get(message.channel) ?? []) handler(message.message)
    }
  }

  private call<T>(op: Op, ...args: unknown[]): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the link to the primary process is closed'))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`the primary process did not answer within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      timer.unref()
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer })
      try {
        this.parent.send!({ gwCluster: 'call', id, op, args } satisfies CallMessage)
      } catch (err) {
        this.pending.delete(id)
        clearTimeout(timer)
        reject(err as Error)
      }
    })
  }

  owners(kind: Kind): Promise<Array<[string, string]>> { return this.call('owners', kind) }
  ownerOf(kind: Kind, name: string): Promise<string | undefined> { return this.call('ownerOf', kind, name) }
  claim(kind: Kind, name: string, owner: string, mode: 'claim' | 'random', maxPerOwner: number): Promise<ClaimResult> { return this.call('claim', kind, name, owner, mode, maxPerOwner) }
  touch(kind: Kind, names: string[]): Promise<void> { return this.call('touch', kind, names) }
  forget(kind: Kind, name: string, owner: string): Promise<void> { return this.call('forget', kind, name, owner) }
  announce(kind: PresenceKind, relay: string, names: string[], ttlMs: number): Promise<void> { return names.length === 0 ? Promise.resolve() : this.call('announce', kind, relay, names, ttlMs) }
  withdraw(kind: PresenceKind, relay: string, names: string[]): Promise<void> { return names.length === 0 ? Promise.resolve() : this.call('withdraw', kind, relay, names) }
  refresh(record: RelayRecord, ttlMs: number): Promise<void> { return this.call('refresh', record, ttlMs) }
  live(kind: PresenceKind): Promise<string[]> { return this.call('live', kind) }
  locate(kind: PresenceKind, name: string): Promise<Located> { return this.call('locate', kind, name) }
  relays(): Promise<RelayRecord[]> { return this.call('relays') }
  leave(relay: string, names: string[], ports: string[], internal: string[] = []): Promise<void> { return this.call('leave', relay, names, ports, internal) }
  rate(owner: string, rps: number): Promise<boolean> { return this.call('rate', owner, rps) }
  async readConfig(): Promise<string | null> { return (await this.call<string | null | undefined>('readConfig')) ?? null }
  writeConfig(raw: string): Promise<void> { return this.call('writeConfig', raw) }
  publish(channel: string, message: string): Promise<void> { return this.call('publish', channel, message) }
  acmeChallengeSet(id: string, value: string, ttlMs: number): Promise<void> { return this.call('acmeChallengeSet', id, value, ttlMs) }
  async acmeChallengeGet(id: string): Promise<string | null> { return (await this.call<string | null | undefined>('acmeChallengeGet', id)) ?? null }
  acmeChallengeDelete(id: string): Promise<void> { return this.call('acmeChallengeDelete', id) }
  acmeCerts(): Promise<Array<[string, string]>> { return this.call('acmeCerts') }
  async acmeCertGet(host: string): Promise<string | null> { return (await this.call<string | null | undefined>('acmeCertGet', host)) ?? null }
  acmeCertSet(host: string, raw: string): Promise<void> { return this.call('acmeCertSet', host, raw) }
  acmeCertDelete(host: string): Promise<void> { return this.call('acmeCertDelete', host) }
  acmeAccountKey(candidate: string): Promise<string> { return this.call('acmeAccountKey', candidate) }
  acmeBegin(key: string, holder: string, lockTtlMs: number, perHour: number): Promise<AcmeBegin> { return this.call('acmeBegin', key, holder, lockTtlMs, perHour) }
  acmeLocked(key: string): Promise<boolean> { return this.call('acmeLocked', key) }
  acmeEnd(key: string, holder: string, failedBackoffMs: number): Promise<void> { return this.call('acmeEnd', key, holder, failedBackoffMs) }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    const list = this.handlers.get(channel)
    if (list) list.push(handler)
    else this.handlers.set(channel, [handler])
  }

  onReturn(): void {
    // The primary never comes back: when it goes, the workers go with it.
  }

  async close(): Promise<void> {
    this.closed = true
    this.parent.off('message', this.listener)
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer)
      call.reject(new Error('the link to the primary process is closed'))
      this.pending.delete(id)
    }
  }
}

/** In the primary: answer `worker`'s calls from `state`, and pass it every publish. */
export function serveClusterState(state: ClusterState, worker: IpcPeer): void {
  const relays = new Set<string>()
  const send = (message: ReplyMessage | PublishMessage): void => {
    try {
      worker.send(message)
    } catch { /* the worker is gone: its exit cleans up */ }
  }
  const stop = state.onPublish((channel, message) => send({ gwCluster: 'publish', channel, message }))
  worker.on('message', (raw) => {
    const message = raw as Partial<CallMessage> | null
    if (message?.gwCluster !== 'call' || typeof message.id !== 'number' || !OPS.includes(message.op as Op) || !Array.isArray(message.args)) return
    const { id, op, args } = message as CallMessage
    // The relay ids this worker speaks for: dropped when it dies.
    if (op === 'refresh') relays.add((args[0] as RelayRecord | undefined)?.id ?? '')
    if (op === 'leave') relays.delete(String(args[0]))
    try {
      const value = (state[op] as (...a: unknown[]) => unknown)(...args)
      send({ gwCluster: 'reply', id, ok: true, ...(value !== undefined ? { value } : {}) })
    } catch (err) {
      send({ gwCluster: 'reply', id, ok: false, error: (err as Error).message })
    }
  })
  worker.on('exit', () => {
    stop()
    for (const relay of relays) state.dropRelay(relay)
  })
}
