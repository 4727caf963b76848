/**
 * `restrict-ips`: allow and deny CIDR lists for the client address, IPv4 and IPv6.
 * Deny wins over allow; with a non-empty allow list, anything not in it is denied. With
 * `enforce: false` the decision is only recorded (`actions.ngrok.restrict_ips.allowed`),
 * for a dry run before turning it on.
 */
import { respond, type ActionDefinition } from '../action.js'
import { createCidrSet, type CidrSet } from '../cidr.js'
import type { ConfigReader } from '../config-reader.js'
import { setActionResult } from '../state.js'

function cidrList(config: ConfigReader, key: string): CidrSet | undefined {
  const list = config.stringList(key, false)
  list.forEach((c, i) => {
    try {
      createCidrSet([c])
    } catch (err) {
      throw config.errorAt([...config.path, key, i], (err as Error).message)
    }
  })
  return list.length === 0 ? undefined : createCidrSet(list)
}

export const restrictIps: ActionDefinition = {
  type: 'restrict-ips',
  phases: ['on_http_request', 'on_tcp_connect'],
  compile(config) {
    if (config.has('ip_policies')) {
      config.fail('ip_policies', 'names IP policies kept in ngrok\'s cloud (ipp_…), which gw cannot read; list their CIDRs under allow and deny instead')
    }
    const allow = cidrList(config, 'allow')
    const deny = cidrList(config, 'deny')
    const enforce = config.bool('enforce', true)
    if (!allow && !deny) config.fail(undefined, 'needs at least one of allow or deny')
    config.done()
    return function restrictIpsCheck(state) {
      const ip = state.request!.clientIp
      const denied = deny?.match(ip)
      const allowedBy = denied === undefined ? allow?.match(ip) : undefined
      const allowed = denied === undefined && (allow ? allowedBy !== undefined : true)
      // ngrok's names: action (allow or deny) and the CIDR that decided it; gw's allowed and client_ip beside them.
      setActionResult(state, 'ngrok', 'restrict_ips', {
        action: allowed ? 'allow' : 'deny', matched_cidr: denied ?? allowedBy ?? '', allowed, client_ip: ip,
      })
      if (!allowed && enforce) return respond(403, ['content-type', 'text/plain; charset=utf-8'], 'Forbidden: your IP address is not allowed\n')
    }
  },
}
