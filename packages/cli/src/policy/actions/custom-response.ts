/**
 * `custom-response`: answer with a fixed (interpolated) status, body and headers. The
 * body is `body` (ngrok's current name) or `content` (its earlier one). Without a
 * content-type header, one is inferred from the body: JSON, HTML or plain text.
 */
import { respond, type ActionDefinition } from '../action.js'
import { headerTemplates, templateAt } from '../compile-helpers.js'

export const customResponse: ActionDefinition = {
  type: 'custom-response',
  phases: ['on_http_request', 'on_http_response'],
  compile(config) {
    const status = config.int('status_code', 200, 200, 599)
    if (config.has('content') && config.has('body')) config.fail('content', 'is the earlier name of body; give one of them')
    const bodyKey = config.has('content') ? 'content' : 'body'
    const body = templateAt(config, config.at(bodyKey), config.template(bodyKey, ''))
    const headers = headerTemplates(config, 'headers', false)
    config.done()
    const hasType = headers.some(([n]) => n.toLowerCase() === 'content-type')
    return function customRespond(state) {
      const root = state.root!
      const raw: string[] = []
      for (const [name, value] of headers) raw.push(name, value(root))
      const text = body(root)
      if (!hasType) raw.push('content-type', inferType(text))
      return respond(status, raw, text)
    }
  },
}

function inferType(body: string): string {
  const first = body.trimStart()[0]
  if (first === '{' || first === '[') {
    try {
      JSON.parse(body)
      return 'application/json'
    } catch {
      // not JSON after all
    }
  }
  if (first === '<') return /^\s*<\?xml/i.test(body) ? 'application/xml' : 'text/html; charset=utf-8'
  return 'text/plain; charset=utf-8'
}
