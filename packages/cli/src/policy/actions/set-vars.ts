/**
 * `set-vars`: set variables for later expressions as `vars.<name>`. ngrok writes
 * `vars: [{name: value}, …]`; a plain map is accepted too. String values take `${…}`;
 * numbers, booleans and lists are kept as they are (integers become CEL ints).
 */
import type { ActionDefinition } from '../action.js'
import type { Template } from '../cel.js'
import { templateAt } from '../compile-helpers.js'
import { describe } from '../config-reader.js'

function toCel(value: unknown): unknown {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value)
  if (Array.isArray(value)) return value.map(toCel)
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCel(v)]))
  return value
}

export const setVars: ActionDefinition = {
  type: 'set-vars',
  phases: ['on_http_request', 'on_http_response'],
  compile(config) {
    const raw = config.raw('vars')
    const entries: Array<[string, Template | unknown, boolean]> = []
    const add = (name: string, value: unknown, path: Array<string | number>): void => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw config.errorAt(path, `${JSON.stringify(name)} is not a valid variable name (letters, digits, _)`)
      if (typeof value === 'string') entries.push([name, templateAt(config, path, value), true])
      else if (value === null || value === undefined) throw config.errorAt(path, 'needs a value')
      else entries.push([name, toCel(value), false])
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
      for (const [name, value, isTemplate] of entries) {
        state.vars[name] = isTemplate ? (value as Template)(state.root!) : value
      }
    }
  },
}
