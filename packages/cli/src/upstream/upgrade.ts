/**
 * The upstream leg of an upgraded connection (a WebSocket: a Vite dev server's hot
 * reload, say). Node's own HTTP client makes this request, because it hands back the
 * socket on 101 and an ordinary response otherwise; undici would need a second handler
 * shape for it. The agent runs the request phase first (agent/upgrade.ts); this file
 * only knows the upstream.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { LookupAddress, LookupAllOptions } from 'node:dns'
import { GwError } from '@gw/protocol'
import { loopbackAwareLookup } from './address.js'
import { isLocalhost, localhostAddress } from './loopback-choice.js'

export interface UpgradeCall {
  origin: string
  hostname: string
  port: number
  method: string
  path: string
  /** Without hop-by-hop headers; Connection and Upgrade are added here. */
  headers: string[]
  upgrade: string
  tlsVerify: boolean
  timeout: number
}

export interface UpgradeHandlers {
  upgraded(res: IncomingMessage, socket: Socket, head: Buffer): void
  /** The upstream answered without upgrading: an ordinary response. */
  answered(res: IncomingMessage): void
  failed(err: Error): void
}

export function callUpgrade(call: UpgradeCall, handlers: UpgradeHandlers): ClientRequest {
  const tls = call.origin.startsWith('https:')
  const request = (tls ? httpsRequest : httpRequest)({
    host: call.hostname.replace(/^\[|\]$/g, ''),
    port: call.port,
    method: call.method,
    path: call.path,
    headers: [...call.headers, 'Connection', 'Upgrade', 'Upgrade', call.upgrade],
    setHost: false,
    lookup: (isLocalhost(call.hostname) ? localhostLookup(call.port, call.timeout) : loopbackAwareLookup) as never,
    rejectUnauthorized: call.tlsVerify,
    timeout: call.timeout,
  })
  request.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
    request.setTimeout(0)
    socket.setTimeout(0)
    handlers.upgraded(res, socket, head)
  })
  request.on('response', (res) => handlers.answered(res))
  request.on('timeout', () => {
    request.destroy(Object.assign(new GwError('GW_ERR_UPSTREAM_TIMEOUT', 'the upstream did not answer the upgrade in time'), { code: 'ETIMEDOUT' }))
  })
  request.on('error', (err) => handlers.failed(err))
  request.end()
  return request
}

/** A lookup that answers `localhost` with the one loopback address the port answers on. */
function localhostLookup(port: number, timeout: number) {
  return (_hostname: string, options: LookupAllOptions, callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void): void => {
    localhostAddress(port, timeout).then(
      (address) => {
        const family = address.includes(':') ? 6 : 4
        if (options.all) callback(null, [{ address, family }])
        else callback(null, address, family)
      },
      (err: Error) => callback(err, ''),
    )
  }
}
