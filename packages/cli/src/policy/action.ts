/**
 * What an action is. Each file under `actions/` exports one `ActionDefinition`; the
 * engine validates its `config` with a `ConfigReader` and compiles it once into a runner.
 * A runner returns nothing to let the next action run, or a `Terminal` to end the phase.
 * It may return a promise, but only actions that wait on I/O do: the composition runs
 * synchronous runners without allocating promises.
 */
import type { Readable } from 'node:stream'
import type { UpstreamPool, UpstreamTarget } from '../upstream/index.js'
import type { ConfigReader } from './config-reader.js'
import type { PolicyState } from './state.js'
import type { Phase, PolicyEvents } from './types.js'

export interface RespondTerminal {
  kind: 'respond'
  status: number
  headers: string[]
  body: string | Buffer | Readable
  /** A gw error code for `gw-error-code` when the answer is an error of gw's, not the policy's intent. */
  errorCode?: string
  /** close-connection: the relay closes the client's connection and writes nothing. */
  close?: boolean
}

export interface ForwardTerminal {
  kind: 'forward'
  upstream: UpstreamTarget | undefined
}

/** forward-internal: the agent hands the request to its internal endpoint `host`. */
export interface InternalTerminal {
  kind: 'internal'
  host: string
}

export type Terminal = RespondTerminal | ForwardTerminal | InternalTerminal
export type ActionResult = Terminal | undefined | void
export type ActionRunner = (state: PolicyState) => ActionResult | Promise<ActionResult>

/** Things compiled actions share; `close()` of the policy releases `disposables`. */
export interface CompileContext {
  phase: Phase
  upstreams: ReadonlyMap<string, UpstreamPool>
  clock: () => number
  events: PolicyEvents | undefined
  endpoint: string | undefined
  disposables: Array<() => void | Promise<void>>
  /** Extra CA certificates etc. for fetching JWKS/OIDC discovery. */
  fetch: typeof fetch
}

export interface ActionDefinition {
  readonly type: string
  readonly phases: readonly Phase[]
  compile(config: ConfigReader, ctx: CompileContext): ActionRunner
}

export function respond(status: number, headers: string[], body: string | Buffer | Readable = '', errorCode?: string): RespondTerminal {
  return errorCode ? { kind: 'respond', status, headers, body, errorCode } : { kind: 'respond', status, headers, body }
}

/** A small JSON answer, for errors actions produce (400 validation, 413…). */
export function respondJson(status: number, value: unknown, extraHeaders: string[] = [], errorCode?: string): RespondTerminal {
  return respond(status, ['content-type', 'application/json; charset=utf-8', ...extraHeaders], JSON.stringify(value), errorCode)
}

export function isPromise<T>(value: unknown): value is Promise<T> {
  return typeof value === 'object' && value !== null && typeof (value as Promise<T>).then === 'function'
}
