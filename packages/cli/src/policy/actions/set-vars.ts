/**
 * `set-vars`: set variables for later expressions as `vars.<name>`, in order, so a
 * variable can use the ones before it. ngrok writes `vars: [{name: value}, …]`; a plain
 * map is accepted too. Values may be any YAML value (null, numbers, lists, maps; integers
 * become CEL ints). Strings take `${…}` interpolation anywhere inside lists and maps; a
 * string that is exactly one `${…}` keeps the expression's type, as in ngrok.
 */
import type { ActionDefinition } from '../action.js'
import { compileWholeExpression, ExpressionError, type CompiledExpression, type Template } from '../cel.js'
import { templateAt } from '../compile-helpers.js'
import type { ConfigReader } from '../config-reader.js'
import { describe } from '../config-reader.js'
import type { EvalRoot } from '../variables.js'

/** A value with its `${…}` parts compiled; constant parts are built once. */
type ValueFn = (root: EvalRoot) => unknown

function compileValue(config: ConfigReader, path: Array<string | number>, value: unknown): { fn: ValueFn; constant: boolean } {
  if (typeof value === 'string') {
    if (!value.includes('${')) return { fn: () => value, constant: true }
    let whole: CompiledExpression | undefined
    try {
      whole = compileWholeExpression(value)
    } catch (err) {
      if (err instanceof ExpressionError) throw config.errorAt(path, `invalid CEL expression ${JSON.stringify(value)}: ${err.message}`, err.allowed)
      throw err
    }
    if (whole) return { fn: whole, constant: false }
    const t: Template = templateAt(config, path, value)
    return { fn: t, constant: false }
  }
  if (typeof value === 'number' && Number.isInteger(value)) {
    const big = BigInt(value)
    return { fn: () => big, constant: true }
  }
  if (Array.isArray(value)) {
    const parts = value.map((v, i) => compileValue(config, [...path, i], v))
    if (parts.every((p) => p.constant)) {
      const fixed = parts.map((p) => p.fn(undefined as unknown as EvalRoot))
      return { fn: () => fixed, constant: true }
    }
    return { fn: (root) => parts.map((p) => p.fn(root)), constant: false }
  }
  if (value && typeof value === 'object') {
    const parts = Object.entries(value).map(([k, v]) => [k, compileValue(config, [...path, k], v)] as const)
    if (parts.every(([, p]) => p.constant)) {
      const fixed = Object.fromEntries(parts.map(([k, p]) => [k, p.fn(undefined as unknown as EvalRoot)]))
      return { fn: () => fixed, constant: true }
    }
    return { fn: (root) => Object.fromEntries(parts.map(([k, p]) => [k, p.fn(root)])), constant: false }
  }
  return { fn: () => value, constant: true }
}

export const setVars: ActionDefinition = {
  type: 'set-vars',
  phases: ['on_http_request', 'on_http_response', 'on_tcp_connect'],
  compile(config) {
    const raw = config.raw('vars')
    const entries: Array<[string, ValueFn]> = []
    const add = (name: string, value: unknown, path: Array<string | number>): void => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw config.errorAt(path, `${JSON.stringify(name)} is not a valid variable name (letters, digits, _)`)
      entries.push([name, compileValue(config, path, value ?? null).fn])
    }
    if (Array.isArray(raw)) {
      raw.forEach((item, i) => {
        if (!item || typeof item !== 'object' || Array.isArray(item)) throw config.errorAt([...config.path, 'vars', i], `must be a map of name: value, got ${describe(item)}`)
        for (const [k, v] of Object.entries(item)) add(k, v, [...config.path, 'vars', i, k])
      })
    } else if (raw && typeof raw === 'object') {
      for (const [k, v] of Object.entries(raw)) add(k, v, [...config.path, 'vars', k])
    } else config.fail('vars', `is required and must be a list of {name: value} maps, got ${describe(raw)}`)
    config.done()
    return function setVariables(state) {
      const root = state.root!
      for (const [name, value] of entries) {
        try {
          state.vars[name] = value(root)
        } catch {
          // An expression that fails leaves the variable unset, as a missing value.
          delete state.vars[name]
        }
      }
    }
  },
}
