/**
 * A typed reader over one object of the policy document. Every action validates its
 * `config` through it, so every error names the same things the same way: where
 * (file:line:col and the document path), what was wrong, and what is allowed. Reading a
 * key marks it; `done()` rejects keys nobody read, which catches typos such as
 * `status-code` for `status_code`.
 *
 * `string`, `optString`, `stringList` and `stringMap` read values fixed when the policy
 * loads: their `${secrets.get(…)}` parts are replaced then, and any other `${…}` is an
 * error (secrets.ts). Fields interpolated per request are read with `template` and
 * `templateMap`, which leave the text for compileTemplate.
 */
import { PolicyError } from './errors.js'
import { parseDuration } from './duration.js'
import { resolveLoadTimeText } from './secrets.js'
import { formatPath, type PathSegment, type PolicySource } from './source.js'

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  return String(value)
}

export class ConfigReader {
  readonly value: Record<string, unknown>
  readonly path: readonly PathSegment[]
  readonly source: PolicySource
  private readonly seen = new Set<string>()

  constructor(value: unknown, path: readonly PathSegment[], source: PolicySource, what = 'an object') {
    this.path = path
    this.source = source
    if (value === undefined || value === null) value = {}
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw this.errorAt(path, `must be ${what}, got ${describe(value)}`)
    }
    this.value = value as Record<string, unknown>
  }

  errorAt(path: readonly PathSegment[], reason: string, allowed?: readonly string[]): PolicyError {
    const pos = this.source.locate(path)
    return new PolicyError(
      'GW_ERR_POLICY_INVALID',
      reason,
      { file: this.source.file, line: pos?.line, col: pos?.col, path: formatPath(path) },
      allowed,
    )
  }

  /** An error about `key` (or about this object when key is omitted). */
  fail(key: PathSegment | undefined, reason: string, allowed?: readonly string[]): never {
    throw this.errorAt(key === undefined ? this.path : [...this.path, key], reason, allowed)
  }

  has(key: string): boolean {
    this.seen.add(key)
    return this.value[key] !== undefined && this.value[key] !== null
  }

  raw(key: string): unknown {
    this.seen.add(key)
    return this.value[key]
  }

  at(key: PathSegment): readonly PathSegment[] {
    return [...this.path, key]
  }

  /** A string fixed at load; `${secrets.get(…)}` resolved. */
  string(key: string, def?: string): string {
    return this.loadTime([...this.path, key], this.template(key, def))
  }

  optString(key: string): string | undefined {
    const v = this.optTemplate(key)
    return v === undefined ? undefined : this.loadTime([...this.path, key], v)
  }

  /** A string interpolated per request: the text as written, for compileTemplate. */
  template(key: string, def?: string): string {
    const v = this.raw(key)
    if (v === undefined || v === null) {
      if (def !== undefined) return def
      this.fail(key, 'is required and must be a string')
    }
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${describe(v)}`)
    return v
  }

  optTemplate(key: string): string | undefined {
    const v = this.raw(key)
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${describe(v)}`)
    return v
  }

  private loadTime(path: readonly PathSegment[], text: string): string {
    const r = resolveLoadTimeText(text)
    if ('error' in r) throw this.errorAt(path, r.error)
    return r.value
  }

  bool(key: string, def: boolean): boolean {
    const v = this.raw(key)
    if (v === undefined || v === null) return def
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${describe(v)}`, ['true', 'false'])
    return v
  }

  int(key: string, def: number | undefined, min: number, max: number): number {
    const v = this.raw(key)
    if (v === undefined || v === null) {
      if (def !== undefined) return def
      this.fail(key, `is required and must be an integer from ${min} to ${max}`)
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(key, `must be an integer from ${min} to ${max}, got ${describe(v)}`)
    }
    return v
  }

  number(key: string, def: number, min: number, max: number): number {
    const v = this.raw(key)
    if (v === undefined || v === null) return def
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      this.fail(key, `must be a number from ${min} to ${max}, got ${describe(v)}`)
    }
    return v
  }

  /** Milliseconds. */
  duration(key: string, def: number | undefined, minMs = 0, maxMs = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(key)
    if (v === undefined || v === null) {
      if (def !== undefined) return def
      this.fail(key, 'is required and must be a duration such as "60s", "1m" or "500ms"')
    }
    const ms = parseDuration(v)
    if (ms === undefined) this.fail(key, `must be a duration such as "60s", "1m" or "500ms", got ${describe(v)}`)
    if (ms < minMs || ms > maxMs) this.fail(key, `must be between ${minMs}ms and ${maxMs}ms, got ${describe(v)}`)
    return ms
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], def?: T): T {
    const v = this.raw(key)
    if ((v === undefined || v === null) && def !== undefined) return def
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      this.fail(key, v === undefined ? 'is required' : `is not a known value: ${describe(v)}`, allowed)
    }
    return v as T
  }

  list(key: string, required: boolean, minItems = 0): unknown[] {
    const v = this.raw(key)
    if (v === undefined || v === null) {
      if (required) this.fail(key, 'is required and must be a list')
      return []
    }
    if (!Array.isArray(v)) this.fail(key, `must be a list, got ${describe(v)}`)
    if (v.length < minItems) this.fail(key, `must have at least ${minItems} item${minItems === 1 ? '' : 's'}`)
    return v
  }

  stringList(key: string, required: boolean, minItems = 0): string[] {
    return this.expressionList(key, required, minItems).map((item, i) => this.loadTime([...this.path, key, i], item))
  }

  /** A list of CEL sources (rule expressions, bucket keys): the text as written. */
  expressionList(key: string, required: boolean, minItems = 0): string[] {
    const list = this.list(key, required, minItems)
    list.forEach((item, i) => {
      if (typeof item !== 'string') throw this.errorAt([...this.path, key, i], `must be a string, got ${describe(item)}`)
    })
    return list as string[]
  }

  /** A map of string → string fixed at load; `${secrets.get(…)}` resolved in the values. */
  stringMap(key: string, required: boolean): Map<string, string> {
    const out = this.templateMap(key, required)
    for (const [name, value] of out) out.set(name, this.loadTime([...this.path, key, name], value))
    return out
  }

  /** A map of string → string interpolated per request (headers, metadata). Numbers and booleans are stringified. */
  templateMap(key: string, required: boolean): Map<string, string> {
    const v = this.raw(key)
    const out = new Map<string, string>()
    if (v === undefined || v === null) {
      if (required) this.fail(key, 'is required and must be a map of names to strings')
      return out
    }
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, `must be a map of names to strings, got ${describe(v)}`)
    for (const [name, value] of Object.entries(v)) {
      if (typeof value === 'string') out.set(name, value)
      else if (typeof value === 'number' || typeof value === 'boolean') out.set(name, String(value))
      else throw this.errorAt([...this.path, key, name], `must be a string, got ${describe(value)}`)
    }
    return out
  }

  child(key: string, required: boolean): ConfigReader {
    const v = this.raw(key)
    if ((v === undefined || v === null) && required) this.fail(key, 'is required and must be an object')
    return new ConfigReader(v, [...this.path, key], this.source)
  }

  /** Reject keys that were never read. */
  done(): void {
    for (const key of Object.keys(this.value)) {
      if (!this.seen.has(key)) this.fail(key, `is not a known field`, [...this.seen].sort())
    }
  }
}
