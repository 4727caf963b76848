/**
 * `url-rewrite`: rewrite the request URL with a regular expression before it goes
 * upstream; the client does not see it (use `redirect` for that). As in ngrok, `from` is
 * matched against the whole URL (`https://host/path?query`) as an RE2 pattern (which may
 * itself take `${…}`), and `to` may use `$1` captures and `${…}` interpolation. Only the path and query of the result are kept;
 * the host stays the endpoint's.
 */
import type { ActionDefinition } from '../action.js'
import { patternAt, templateAt } from '../compile-helpers.js'
import { fullUrl, pathAndQuery } from '../url.js'
import { setActionResult } from '../state.js'

export const urlRewrite: ActionDefinition = {
  type: 'url-rewrite',
  phases: ['on_http_request'],
  compile(config) {
    const from = patternAt(config, 'from', config.template('from'))
    const to = templateAt(config, config.at('to'), config.template('to'))
    config.done()
    return function rewriteUrl(state) {
      const req = state.request!
      const url = fullUrl(req)
      const re = from(state.root!)
      const m = re?.matcher(url)
      if (!re || !m!.find()) return
      const matches: string[] = []
      for (let g = 0; g <= m!.groupCount(); g++) matches.push(m!.group(g) ?? '')
      const replaced = re.matcher(url).replaceFirst(to(state.root!))
      const target = pathAndQuery(replaced)
      if (target !== undefined) req.target = target
      // ngrok's result: what matched (the whole match, then each group) and the URL after the rewrite.
      setActionResult(state, 'ngrok', 'url_rewrite', { matches, url: replaced })
    }
  },
}
