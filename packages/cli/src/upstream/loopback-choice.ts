/**
 * Which loopback address a `localhost` port answers on, learned once per port.
 *
 * `gw http 3000` means localhost:3000, and a dev server listens on 127.0.0.1 or on ::1
 * (or both). Happy eyeballs per connection (autoSelectFamily) gives each address 250 ms
 * before trying the next; when the agent's event loop is busy with a burst of requests,
 * that timer fires before the 'connect' it was waiting for is even seen, the good
 * connection is dropped, the other family is refused, and the request fails: 22-39% of
 * 2,000 concurrent requests did (issue 10). So the agent asks once, connecting to both
 * addresses at the same time with no timer race, keeps the one that answered, and
 * connects every later request straight to it. A refusal at the kept address (the
 * service restarted on the other family) makes the next connection ask again.
 */
import { connect, type Socket } from 'node:net'

const LOOPBACK = ['127.0.0.1', '::1'] as const

const known = new Map<number, string>()
const asking = new Map<number, Promise<string>>()

export function isLocalhost(hostname: string): boolean {
  return hostname.toLowerCase() === 'localhost'
}

/** The loopback address `localhost:port` answers on; rejects with the IPv4 failure when neither answers. */
export function localhostAddress(port: number, timeout: number): Promise<string> {
  const address = known.get(port)
  if (address !== undefined) return Promise.resolve(address)
  let pending = asking.get(port)
  if (!pending) {
    pending = ask(port, timeout).finally(() => asking.delete(port))
    asking.set(port, pending)
  }
  return pending
}

/** Called when a connection to the kept address was refused: ask again next time. */
export function forgetLocalhost(port: number, address: string): void {
  if (known.get(port) === address) known.delete(port)
}

function ask(port: number, timeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sockets: Socket[] = []
    const errors: Error[] = []
    let settled = false
    const finish = (err: Error | undefined, address?: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      for (const socket of sockets) socket.destroy()
      if (err) return reject(err)
      known.set(port, address!)
      resolve(address!)
    }
    const timer = setTimeout(() => {
      finish(Object.assign(new Error(`connect ETIMEDOUT localhost:${port} (neither 127.0.0.1 nor ::1 answered within ${timeout} ms)`), { code: 'ETIMEDOUT' }))
    }, timeout)
    for (const address of LOOPBACK) {
      const socket = connect({ host: address, port, autoSelectFamily: false })
      sockets.push(socket)
      socket.once('connect', () => finish(undefined, address))
      socket.once('error', (err) => {
        errors[LOOPBACK.indexOf(address)] = err
        if (errors.filter(Boolean).length === LOOPBACK.length) finish(errors[0])
      })
    }
  })
}
