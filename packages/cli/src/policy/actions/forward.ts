/**
 * `forward`: send the request to a named upstream pool (`upstream: api`) or to a URL
 * on this machine (`url: http://localhost:3001`). It ends the request phase. This is
 * how routing by path, method or header is written: a rule with expressions and a
 * forward. The picked target must be released by the agent (see upstream/pool.ts); when
 * the whole pool is down, the client gets 502 with `gw-error-code`.
 */
import { respondJson, type ActionDefinition } from '../action.js'
import { createUpstreamPool, UpstreamPoolDownError, type UpstreamPool } from '../../upstream/index.js'

export const forward: ActionDefinition = {
  type: 'forward',
  phases: ['on_http_request'],
  compile(config, ctx) {
    const name = config.optString('upstream')
    const url = config.optString('url')
    config.done()
    let pool: UpstreamPool
    if ((name === undefined) === (url === undefined)) config.fail(undefined, 'needs exactly one of upstream (a pool name) or url')
    if (name !== undefined) {
      const found = ctx.upstreams.get(name)
      if (!found) throw config.errorAt(config.at('upstream'), `no upstream named ${JSON.stringify(name)}`, [...ctx.upstreams.keys()])
      pool = found
    } else {
      try {
        pool = createUpstreamPool({ name: url!, targets: [url!] })
      } catch (err) {
        config.fail('url', (err as Error).message)
      }
      ctx.disposables.push(() => pool.close())
    }
    return function forwardRequest(state) {
      try {
        const target = pool.pick()
        state.upstream = target
        return { kind: 'forward', upstream: target }
      } catch (err) {
        if (!(err instanceof UpstreamPoolDownError)) throw err
        return respondJson(502, { error: err.code, message: err.message }, [], 'GW_ERR_UPSTREAM_POOL_DOWN')
      }
    }
  },
}
