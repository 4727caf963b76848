/**
 * An agent that does not play by the rules: it speaks the real handshake through the
 * real multiplexer, then answers each request with whatever bytes a test gives it. The
 * relay must treat all of it as untrusted input; a real gw agent never sends these.
 */
import { once } from 'node:events'
import { WebSocket } from 'ws'
import {
  createWebSocketTransport,
  encodeJsonMessage,
  encodeMessageHeader,
  MessageReader,
  MessageType,
  PROTOCOL_VERSION,
  Session,
  checkWelcome,
  writeJsonMessage,
  type RequestHead,
  type Stream,
  type Welcome,
} from '@gw/protocol'

export type RogueHandler = (stream: Stream, head: RequestHead) => void

export interface RogueAgent {
  session: Session
  welcome: Welcome
  close(): void
}

export async function startRogueAgent(relayHttpUrl: string, name: string, handler: RogueHandler, authtoken = ''): Promise<RogueAgent> {
  const ws = new WebSocket(`${relayHttpUrl.replace(/^http/, 'ws')}/_gw/agent`, { perMessageDeflate: false })
  await once(ws, 'open')
  const session = new Session(createWebSocketTransport(ws), { client: true })
  const control = session.open()
  control.on('error', () => {})
  const reader = new MessageReader(control)
  writeJsonMessage(control, MessageType.HELLO, {
    version: PROTOCOL_VERSION,
    authtoken,
    agentId: `rogue-${name}`,
    client: 'rogue-test-agent',
    endpoints: [{ name, proto: 'http' }],
  })
  const welcome = await reader.nextJson(MessageType.WELCOME, 'welcome', checkWelcome)
  session.on('stream', (stream: Stream) => {
    stream.on('error', () => {})
    const streamReader = new MessageReader(stream)
    streamReader.nextJson(MessageType.REQUEST_HEAD, 'request head', (v) => v as RequestHead).then(
      (head) => {
        streamReader.detach()
        handler(stream, head)
      },
      () => stream.destroy(),
    )
  })
  return { session, welcome, close: () => session.close() }
}

/** A response head message, with no checks: the point is to send what a check would refuse. */
export function headMessage(head: { status: number; statusMessage?: string; rawHeaders: string[] }): Buffer {
  return encodeJsonMessage(MessageType.RESPONSE_HEAD, head)
}

export function dataMessage(body: Buffer | string): Buffer {
  const b = Buffer.from(body)
  return Buffer.concat([encodeMessageHeader(MessageType.DATA, b.length), b])
}

export function endMessage(trailers?: string[]): Buffer {
  return trailers ? encodeJsonMessage(MessageType.END, trailers) : encodeMessageHeader(MessageType.END, 0)
}
