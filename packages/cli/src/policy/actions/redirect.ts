/**
 * `redirect`: answer with a redirect. `from` (an RE2 pattern matched against the whole
 * URL, which may take `${…}`; default: everything) and `to` (with `$1` captures and `${…}`), as in ngrok. When `from`
 * does not match, the action does nothing and the phase goes on.
 */
import { respond, type ActionDefinition } from '../action.js'
import { headerTemplates, patternAt, templateAt } from '../compile-helpers.js'
import { fullUrl } from '../url.js'
import { setActionResult } from '../state.js'

const REDIRECT_STATUSES = [301, 302, 303, 307, 308]

export const redirect: ActionDefinition = {
  type: 'redirect',
  phases: ['on_http_request', 'on_http_response'],
  compile(config) {
    const fromText = config.optTemplate('from')
    const from = fromText === undefined ? undefined : patternAt(config, 'from', fromText)
    const to = templateAt(config, config.at('to'), config.template('to'))
    const status = config.int('status_code', 302, 300, 399)
    if (!REDIRECT_STATUSES.includes(status)) config.fail('status_code', `must be a redirect status, got ${status}`, REDIRECT_STATUSES.map(String))
    const headers = headerTemplates(config, 'headers', false)
    config.done()
    return function redirectRequest(state) {
      const root = state.root!
      let location = to(root)
      const matches: string[] = []
      if (from) {
        const url = fullUrl(state.request!)
        const re = from(root)
        const m = re?.matcher(url)
        if (!re || !m!.find()) return
        for (let g = 0; g <= m!.groupCount(); g++) matches.push(m!.group(g) ?? '')
        location = re.matcher(url).replaceFirst(location)
      }
      // ngrok's result: what the pattern matched (the whole match, then each group) and where it sent the client.
      setActionResult(state, 'ngrok', 'redirect', { matches, url: location })
      const raw = ['location', location, 'content-length', '0']
      for (const [name, value] of headers) raw.push(name, value(root))
      return respond(status, raw)
    }
  },
}
