/**
 * A raw TCP client: it sends exactly the bytes a test gives and collects exactly what
 * comes back, so a test sees what a browser's parser would see, extra bytes included.
 */
import { connect } from 'node:net'

export interface RawResult {
  /** Everything received, as latin1 so that every byte maps to one character. */
  text: string
  /** The server closed (or reset) the connection before `idleMs` of silence. */
  closed: boolean
}

export function rawExchange(port: number, bytes: string | Buffer, idleMs = 1500, host = '127.0.0.1'): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = connect(port, host)
    const chunks: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed })
    }
    const arm = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => finish(false), idleMs)
    }
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      arm()
    })
    socket.on('error', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('connect', () => {
      socket.write(bytes)
      arm()
    })
  })
}

/** The status codes of every response head in `text`, in order. */
export function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]))
}
