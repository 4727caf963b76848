/**
 * `url-rewrite`: rewrite the request URL with a regular expression before it goes
 * upstream; the client does not see it (use `redirect` for that). As in ngrok, `from` is
 * matched against the whole URL (`https://host/path?query`), and `to` may use `$1`
 * captures and `${…}` interpolation. Only the path and query of the result are kept;
 * the host stays the endpoint's.
 */
import type { ActionDefinition } from '../action.js'
import { regexAt, templateAt } from '../compile-helpers.js'
import { fullUrl, pathAndQuery } from '../url.js'

export const urlRewrite: ActionDefinition = {
  type: 'url-rewrite',
  phases: ['on_http_request'],
  compile(config) {
    const from = regexAt(config, 'from', config.string('from'))
    const to = templateAt(config, config.at('to'), config.string('to'))
    config.done()
    return function rewriteUrl(state) {
      const req = state.request!
      const url = fullUrl(req)
      from.lastIndex = 0
      if (!from.test(url)) return
      const replaced = url.replace(from, to(state.root!))
      const target = pathAndQuery(replaced)
      if (target !== undefined) req.target = target
    }
  },
}
