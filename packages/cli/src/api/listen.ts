/**
 * Where the agent API listens. The default, 127.0.0.1:4040, moves to 4041, 4042… when
 * taken, as ngrok's does, so a second agent on the machine still gets an inspector. An
 * address the user gave is a promise: if it is taken, that is an error, not a move.
 */
import type { Server } from 'node:http'
import { InspectError } from '../inspect/errors.js'

export const DEFAULT_API_HOST = '127.0.0.1'
export const DEFAULT_API_PORT = 4040
/** How many ports after 4040 the default tries. */
const FALLBACK_PORTS = 100

export function parseApiAddr(addr: string): { host: string; port: number } {
  const text = addr.trim()
  let host = DEFAULT_API_HOST
  let portText = text
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  if (bracket !== null) {
    host = bracket[1]!
    portText = bracket[2] ?? String(DEFAULT_API_PORT)
  } else if (text.includes(':')) {
    const i = text.lastIndexOf(':')
    host = text.slice(0, i) || DEFAULT_API_HOST
    portText = text.slice(i + 1)
  } else if (!/^\d+$/.test(text)) {
    host = text
    portText = String(DEFAULT_API_PORT)
  }
  const port = Number(portText)
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new InspectError('GW_ERR_API_LISTEN', `the agent API address ${JSON.stringify(addr)} is not host:port`)
  }
  return { host, port }
}

function listenOnce(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening)
      reject(err)
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}

export async function listenApi(server: Server, addr: string | undefined): Promise<{ host: string; port: number }> {
  const explicit = addr !== undefined
  const { host, port } = explicit ? parseApiAddr(addr) : { host: DEFAULT_API_HOST, port: DEFAULT_API_PORT }
  const last = explicit || port === 0 ? port : Math.min(65535, port + FALLBACK_PORTS)
  for (let p = port; p <= last; p++) {
    try {
      await listenOnce(server, host, p)
      const bound = server.address()
      return { host, port: typeof bound === 'object' && bound !== null ? bound.port : p }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EADDRINUSE' && p < last) continue
      const hint = code === 'EADDRINUSE' ? (explicit ? '; choose another --inspect-addr' : `; ports ${port}-${last} are all taken`) : ''
      throw new InspectError('GW_ERR_API_LISTEN', `the agent API could not listen on ${host}:${p}: ${(err as Error).message}${hint}`, { cause: err })
    }
  }
  throw new InspectError('GW_ERR_API_LISTEN')
}
