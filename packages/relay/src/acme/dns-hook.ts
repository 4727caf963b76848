/**
 * The DNS-01 hook: a command the operator gives with `--acme-dns-hook`, which publishes
 * and removes the TXT record a DNS-01 challenge asks for. gw runs it without a shell:
 *
 *   <hook> set   _acme-challenge.tunnel.example.com <value>
 *   <hook> clear _acme-challenge.tunnel.example.com <value>
 *
 * with the same three in the environment (GW_ACME_DNS_ACTION, GW_ACME_DNS_NAME,
 * GW_ACME_DNS_VALUE) and GW_ACME_DNS_DOMAIN, the domain being validated. `set` must exit 0
 * only once the record is published (visible to the CA's resolvers); `clear` removes that
 * value. A non-zero exit, or no exit within the timeout, fails the order.
 */
import { execFile } from 'node:child_process'
import { RelayError } from '../errors.js'

export const DNS_HOOK_TIMEOUT = 180_000

export function runDnsHook(hook: string, action: 'set' | 'clear', name: string, value: string, domain: string, timeout = DNS_HOOK_TIMEOUT): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      hook,
      [action, name, value],
      {
        timeout,
        maxBuffer: 256 * 1024,
        env: { ...process.env, GW_ACME_DNS_ACTION: action, GW_ACME_DNS_NAME: name, GW_ACME_DNS_VALUE: value, GW_ACME_DNS_DOMAIN: domain },
      },
      (err, _stdout, stderr) => {
        if (!err) return resolve()
        const tail = String(stderr).trim().split('\n').slice(-3).join(' | ')
        const how = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'was not found' : err.killed ? `did not finish within ${timeout / 1000} s` : `exited with ${err.code ?? err.signal}`
        reject(new RelayError('GW_ERR_ACME_DNS_HOOK', `the DNS hook ${hook} ${action} ${name} ${how}${tail ? `: ${tail}` : ''}`, { cause: err }))
      },
    )
  })
}
