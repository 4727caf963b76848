/**
 * Replay: send a captured request again, through the same pipeline as tunnel traffic
 * (pipeline.ts), from a stand-in stream instead of the relay's: its readable side holds
 * the request as the relay would frame it, its writable side drops the answer. The
 * exchange is recorded like any other, marked with the id it replays.
 *
 * The policy is skipped: the capture holds the request as it reached the agent, and a
 * replay repeats it to the upstream, as ngrok's does (its policy runs at its edge).
 */
import { Duplex, PassThrough, Writable } from 'node:stream'
import { CodedError, MessageWriter, type RequestHead } from '@gw/protocol'
import { now } from './recorder.js'
import type { AgentRuntime, EndpointRuntime } from './request-context.js'
import { serveStream } from './pipeline.js'

export interface ReplayRequest {
  method: string
  target: string
  rawHeaders: string[]
  body: Buffer
}

export function replayRequest(request: ReplayRequest, replayOf: string, endpoint: EndpointRuntime, runtime: AgentRuntime): Promise<void> {
  const head: RequestHead = {
    method: request.method,
    target: request.target,
    httpVersion: '1.1',
    rawHeaders: request.rawHeaders,
    remoteAddress: '127.0.0.1',
    remotePort: 0,
    scheme: 'http',
    tunnel: endpoint.publicName,
    receivedAt: now(),
    upgrade: false,
    expectContinue: false,
    hasBody: request.body.length > 0,
  }
  // The request as the relay would frame it, through the protocol's one encoder.
  const input = new PassThrough()
  const framer = new MessageWriter(input)
  if (request.body.length === 0) framer.requestWithoutBody(head)
  else {
    framer.requestHead(head)
    framer.data(request.body)
    framer.end()
  }
  const stream = Duplex.from({ readable: input, writable: new Writable({ write: (_chunk, _encoding, callback) => callback() }) })
  return new Promise((resolve, reject) => {
    serveStream(stream, { ...runtime, record: true }, {
      endpoint,
      replayOf,
      skipPolicy: true,
      onFinish: (error) => {
        stream.destroy()
        if (error) reject(new CodedError(error.code, 502, error.message))
        else resolve()
      },
    })
  })
}
