/** `custom-response`: answer with a fixed (interpolated) status, body and headers. */
import { respond, type ActionDefinition } from '../action.js'
import { headerTemplates, templateAt } from '../compile-helpers.js'

export const customResponse: ActionDefinition = {
  type: 'custom-response',
  phases: ['on_http_request', 'on_http_response'],
  compile(config) {
    const status = config.int('status_code', 200, 200, 599)
    const body = templateAt(config, config.at('body'), config.string('body', ''))
    const headers = headerTemplates(config, 'headers', false)
    config.done()
    const hasType = headers.some(([n]) => n.toLowerCase() === 'content-type')
    return function customRespond(state) {
      const root = state.root!
      const raw: string[] = []
      for (const [name, value] of headers) raw.push(name, value(root))
      if (!hasType) raw.push('content-type', 'text/plain; charset=utf-8')
      return respond(status, raw, body(root))
    }
  },
}
