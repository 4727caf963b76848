/**
 * Composition of actions into a rule, and rules into a phase, in the manner of Hono's
 * `compose()`: a list of small functions becomes one, with guards against misuse.
 *
 * The difference from Hono is the return type: a runner that returns synchronously keeps
 * the loop synchronous, and only a runner that returns a promise moves the rest of the
 * loop into `.then`. A policy of header and IP actions therefore evaluates a request
 * with no promise at all.
 */
import { isPromise, type ActionResult, type ActionRunner, type Terminal } from './action.js'
import { evaluatesTrue, type CompiledExpression } from './cel.js'
import type { PolicyState } from './state.js'

export interface CompiledActionStep {
  readonly type: string
  readonly run: ActionRunner
}

export interface CompiledRule {
  readonly name: string | undefined
  readonly expressions: readonly CompiledExpression[]
  readonly actions: readonly CompiledActionStep[]
}

function checkResult(result: ActionResult, type: string): Terminal | undefined {
  if (result === undefined || result === null) return undefined
  if (typeof result !== 'object' || (result.kind !== 'respond' && result.kind !== 'forward' && result.kind !== 'internal')) {
    throw new TypeError(`action ${type} returned ${String(result)}, not a terminal result or nothing`)
  }
  return result
}

function runActions(rule: CompiledRule, state: PolicyState, from: number): Terminal | undefined | Promise<Terminal | undefined> {
  const actions = rule.actions
  for (let i = from; i < actions.length; i++) {
    const step = actions[i]!
    state.currentAction = step.type
    state.currentRule = rule.name
    const result = step.run(state)
    if (isPromise<ActionResult>(result)) {
      return result.then((r) => {
        // Another action may have run in between only if the phase was misused concurrently.
        if (state.currentAction !== step.type) throw new Error('a policy phase ran twice concurrently for one request')
        return checkResult(r, step.type) ?? runActions(rule, state, i + 1)
      })
    }
    const terminal = checkResult(result, step.type)
    if (terminal) return terminal
  }
  return undefined
}

/** Run a phase: each matching rule's actions, in order, until a terminal result. */
export function runRules(
  rules: readonly CompiledRule[],
  state: PolicyState,
  from = 0,
): Terminal | undefined | Promise<Terminal | undefined> {
  const root = state.root!
  for (let i = from; i < rules.length; i++) {
    const rule = rules[i]!
    let matched = true
    for (const expr of rule.expressions) {
      if (!evaluatesTrue(expr, root)) {
        matched = false
        break
      }
    }
    if (!matched) continue
    const result = runActions(rule, state, 0)
    if (isPromise<Terminal | undefined>(result)) return result.then((r) => r ?? runRules(rules, state, i + 1))
    if (result) return result
  }
  return undefined
}
