/**
 * A request from inside the agent to one of its internal endpoints (the http-request
 * action's `https://<name>.internal` URLs): it goes through the same pipeline as tunnel
 * traffic (pipeline.ts), the internal endpoint's traffic policy included, from a
 * stand-in stream as a replay does. Its readable side holds the request framed as the
 * relay would; its writable side is read back as the relay reads an agent's answer.
 * Not recorded: it is part of the request that caused it.
 */
import { Duplex, PassThrough } from 'node:stream'
import { CodedError, MessageReader, MessageWriter, type RequestHead } from '@gw/protocol'
import { now } from './recorder.js'
import type { AgentRuntime, EndpointRuntime } from './request-context.js'
import { serveStream } from './pipeline.js'
import { readResponseHead } from './read-response-head.js'

export interface InternalRequest {
  method: string
  target: string
  rawHeaders: string[]
  body: Buffer
  clientIp: string
}

export interface InternalResponse {
  status: number
  rawHeaders: string[]
  body: Buffer
}

/** Fails with a coded error (the pipeline's, or the size cap's); never hangs past `signal`. */
export function internalRequest(
  request: InternalRequest, endpoint: EndpointRuntime, runtime: AgentRuntime, hops: number, maxBody: number, signal: AbortSignal,
): Promise<InternalResponse> {
  const head: RequestHead = {
    method: request.method,
    target: request.target,
    httpVersion: '1.1',
    rawHeaders: request.rawHeaders,
    remoteAddress: request.clientIp,
    remotePort: 0,
    scheme: 'https',
    tunnel: endpoint.publicName,
    receivedAt: now(),
    upgrade: false,
    expectContinue: false,
    hasBody: request.body.length > 0,
  }
  const input = new PassThrough()
  const framer = new MessageWriter(input)
  if (request.body.length === 0) framer.requestWithoutBody(head)
  else {
    framer.requestHead(head)
    framer.data(request.body)
    framer.end()
  }
  const output = new PassThrough()
  const stream = Duplex.from({ readable: input, writable: output })
  const reader = new MessageReader(Duplex.from({ readable: output, writable: new PassThrough() }))
  return new Promise<InternalResponse>((resolve, reject) => {
    const fail = (err: Error): void => {
      stream.destroy()
      reject(err)
    }
    const onAbort = (): void => fail(new CodedError('GW_ERR_UPSTREAM_TIMEOUT', 504, 'the internal request timed out'))
    signal.addEventListener('abort', onAbort, { once: true })
    const settle = <T>(fn: (v: T) => void) => (v: T): void => {
      signal.removeEventListener('abort', onAbort)
      fn(v)
    }
    const ok = settle(resolve)
    const ko = settle(fail)
    serveStream(stream, { ...runtime, record: false }, { endpoint, internalHops: hops })
    readResponseHead(reader, () => new Error('the internal endpoint sent no response'), (err, response) => {
      if (err) return ko(err)
      if (response.error) return ko(new CodedError(response.error.code, 502, response.error.message))
      const chunks: Buffer[] = []
      let size = 0
      const control = reader.bodyTo({
        data(chunk) {
          size += chunk.length
          if (size > maxBody) {
            control.cancel()
            ko(new CodedError('GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE', 502, `response size exceeded: the body is over ${maxBody} bytes`))
            return false
          }
          chunks.push(chunk)
          return true
        },
        end() {
          stream.destroy()
          ok({ status: response.status, rawHeaders: response.rawHeaders, body: Buffer.concat(chunks, size) })
        },
        error: ko,
      })
      control.resume()
    })
  })
}
