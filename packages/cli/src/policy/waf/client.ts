/**
 * The policy's side of the ModSecurity worker: one worker thread for the process,
 * started by the first evaluation, asked by id, stopped when no policy uses it.
 */
import { Worker } from 'node:worker_threads'
import type { WafAnswer, WafTransaction } from './protocol.js'

/** An evaluation that takes longer than this fails (on_error decides what follows). */
const TIMEOUT_MS = 10_000

export interface WafVerdict {
  blocked: boolean
  anomalyScore: number
  matchedRules: Array<{ id: number; message: string; severity: string; data: string }>
}

let worker: Worker | undefined
let users = 0
let nextId = 0
const waiting = new Map<number, { resolve: (a: WafAnswer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()

function failAll(err: Error): void {
  for (const [id, w] of waiting) {
    clearTimeout(w.timer)
    waiting.delete(id)
    w.reject(err)
  }
}

function start(lib: string): Worker {
  const w = new Worker(new URL('./modsecurity-worker.js', import.meta.url), { env: { ...process.env, GW_MODSECURITY_LIB: lib } })
  w.on('message', (answer: WafAnswer) => {
    const entry = waiting.get(answer.id)
    if (!entry) return
    waiting.delete(answer.id)
    clearTimeout(entry.timer)
    entry.resolve(answer)
  })
  w.on('error', (err) => failAll(new Error(`the ModSecurity worker failed: ${err.message}`)))
  w.on('exit', () => {
    if (worker === w) worker = undefined
    failAll(new Error('the ModSecurity worker stopped'))
  })
  // An idle worker does not keep the process alive.
  w.unref()
  return w
}

/** A policy that has OWASP CRS actions holds the worker; `release` when the policy closes. */
export function holdWaf(): () => Promise<void> {
  users++
  let released = false
  return async () => {
    if (released) return
    released = true
    if (--users === 0 && worker) {
      const w = worker
      worker = undefined
      await w.terminate()
    }
  }
}

export function evaluateWaf(lib: string, rules: string, transaction: WafTransaction): Promise<WafVerdict> {
  worker ??= start(lib)
  const id = ++nextId
  const w = worker
  return new Promise<WafAnswer>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id)
      reject(new Error(`ModSecurity gave no verdict within ${TIMEOUT_MS} ms`))
    }, TIMEOUT_MS)
    waiting.set(id, { resolve, reject, timer })
    w.postMessage({ id, rules, transaction })
  }).then((answer) => {
    if (!answer.ok) throw new Error(answer.error)
    return { blocked: answer.blocked, anomalyScore: answer.anomalyScore, matchedRules: answer.matchedRules }
  })
}
