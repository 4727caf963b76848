/**
 * A real HTTP/2 client (node:http2) and curl --http2 for tests of the relay's HTTP/2 edge.
 */
import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const HAVE_CURL = !(await new Promise<boolean>((resolve) => execFile('curl', ['--version'], (err) => resolve(Boolean(err)))))

export interface H2Response {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  trailers: IncomingHttpHeaders | undefined
}

/** An HTTP/2 session to the relay's TLS port, trusting its CA, with SNI `servername`. */
export async function h2Connect(httpsUrl: string, ca: string, servername: string): Promise<ClientHttp2Session> {
  const session = connect(httpsUrl, { ca, servername })
  session.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve())
    session.once('error', reject)
  })
  return session
}

/** One request on `session`; resolves when the stream ends (or rejects on a reset). */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined })
    let status = 0
    let responseHeaders: IncomingHttpHeaders = {}
    let trailers: IncomingHttpHeaders | undefined
    const chunks: Buffer[] = []
    stream.on('response', (h) => {
      status = Number(h[':status'])
      responseHeaders = h
    })
    stream.on('trailers', (t) => {
      trailers = t
    })
    stream.on('data', (d: Buffer) => chunks.push(d))
    stream.on('error', reject)
    stream.on('close', () => {
      if (status === 0 || stream.rstCode !== 0) reject(new Error(`stream closed with code ${stream.rstCode} (status ${status})`))
      else resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks), trailers })
    })
    if (body !== undefined) stream.end(body)
  })
}

export interface CurlResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Run curl with the relay's CA written into `dir`. */
export function curl(dir: string, ca: string, args: string[]): Promise<CurlResult> {
  const caFile = join(dir, 'relay-ca.pem')
  writeFileSync(caFile, ca)
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--cacert', caFile, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as NodeJS.ErrnoException & { code?: number }).code as unknown as number) ?? 1 : 0, stdout, stderr })
    })
  })
}
