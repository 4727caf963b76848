/**
 * `log`: write a line to the agent's event stream (the terminal UI, `--log-format`
 * and the agent API all read it), with `metadata` values interpolated.
 */
import type { ActionDefinition } from '../action.js'
import { templateAt } from '../compile-helpers.js'
import { setActionResult } from '../state.js'

export const log: ActionDefinition = {
  type: 'log',
  phases: ['on_http_request', 'on_http_response', 'on_tcp_connect'],
  compile(config, ctx) {
    const metadata = [...config.templateMap('metadata', false)].map(
      ([k, v]) => [k, templateAt(config, [...config.path, 'metadata', k], v)] as const,
    )
    const message = templateAt(config, config.at('message'), config.template('message', 'policy log'))
    config.done()
    const { events, endpoint, phase } = ctx
    return function logAction(state) {
      const root = state.root!
      // ngrok's result: the metadata as interpolated, whether or not anyone reads the log.
      const values: Record<string, string> = {}
      for (const [k, t] of metadata) values[k] = t(root)
      setActionResult(state, 'ngrok', 'log', { metadata: values })
      if (!events || events.listenerCount?.('log') === 0) return
      const fields: Record<string, unknown> = { phase, rule: state.currentRule, endpoint, ...values }
      events.emit('log', { level: 'info', msg: message(root), fields })
    }
  },
}
