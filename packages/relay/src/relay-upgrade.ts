/**
 * An upgraded connection (WebSocket, or any `Upgrade:`) through the tunnel: one stream
 * for the whole connection. The head goes framed; after it the relay → agent direction
 * is raw bytes. The agent answers with a framed response head: a 101 switches the
 * agent → relay direction to raw bytes too, anything else is a normal framed response.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http'
import {
  GwError,
  type ErrorCode,
  MessageReader,
  MessageWriter,
  decodeJson,
  MessageType,
  checkResponseHead,
  removeRawHeaders,
  type RequestHead,
  renderErrorPage,
  ERROR_CODE_HEADER,
  type Stream,
} from '@gw/protocol'
import { safeReason } from './response-headers.js'
import { checkAgentResponse } from './agent-response.js'

/**
 * A response head written as raw bytes, so every piece an agent sent is checked first:
 * a CR or LF in a reason phrase or header would split the response on the client's socket.
 */
export function writeRawResponse(socket: Duplex, status: number, statusMessage: string | undefined, rawHeaders: string[], body?: Buffer): void {
  let head = `HTTP/1.1 ${status} ${safeReason(statusMessage) ?? STATUS_CODES[status] ?? ''}\r\n`
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const value = rawHeaders[i + 1]!
    try {
      validateHeaderName(name)
      validateHeaderValue(name, value)
    } catch (err) {
      throw new GwError('GW_ERR_UPSTREAM_BAD_RESPONSE', `the upstream's response head is invalid: ${(err as Error).message}`)
    }
    head += `${name}: ${value}\r\n`
  }
  head += '\r\n'
  // Header values may hold obs-text (0x80-0xff), one byte each, as Node's own writer does.
  socket.write(Buffer.from(head, 'latin1'))
  if (body) socket.write(body)
}

const FRAMING = new Set(['content-length', 'transfer-encoding'])

export function sendRawErrorPage(req: IncomingMessage, socket: Duplex, code: ErrorCode, detail: string, retryAfter?: number): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const page = renderErrorPage(code, detail, req.headers.accept)
  const headers = Object.entries(page.headers).flat()
  if (retryAfter !== undefined) headers.push('Retry-After', String(retryAfter))
  headers.push('Connection', 'close')
  writeRawResponse(socket, page.status, undefined, headers, page.body)
  socket.end()
}

export function relayUpgrade(req: IncomingMessage, socket: Duplex, firstBytes: Buffer, stream: Stream, head: RequestHead, maxHeadSize: number): void {
  const reader = new MessageReader(stream, { maxMessageSize: maxHeadSize })
  stream.on('error', () => {})
  socket.on('error', () => stream.destroy())
  socket.on('close', () => stream.destroy())

  new MessageWriter(stream).requestHead(head)
  if (firstBytes.length > 0) stream.write(firstBytes)
  socket.pipe(stream)

  const run = async (): Promise<void> => {
    const message = await reader.next()
    if (!message) throw new GwError('GW_ERR_UPSTREAM_FAILED', 'the agent closed the stream without a response')
    if (message.type !== MessageType.RESPONSE_HEAD) {
      throw new GwError('GW_ERR_MESSAGE_MALFORMED', 'expected a response head')
    }
    const response = checkResponseHead(decodeJson(message.payload, 'response head'))
    if (response.error) return sendRawErrorPage(req, socket, response.error.code, response.error.message)
    if (response.close) {
      // The policy's close-connection: nothing is written, the client's connection ends.
      socket.destroy()
      stream.destroy()
      return
    }
    // This head is written to the socket by hand: unchecked, a CR LF in it would be a
    // response of the agent's making.
    const checked = checkAgentResponse(response, true)
    if (checked.status === 101) {
      writeRawResponse(socket, 101, checked.statusMessage, checked.headers)
      const rest = reader.detach()
      if (rest.length > 0) socket.write(rest)
      stream.pipe(socket)
      // pipe() ends the client's socket on the stream's FIN, but not on a reset; an agent
      // whose upstream closed may reset instead of ending. Either way the upstream side is
      // gone: end the client's socket (after what was written) so it never waits on a
      // half-dead connection for its own close timeout.
      stream.once('close', () => {
        if (!socket.writableEnded) socket.end()
      })
      stream.resume()
      return
    }
    // The upstream refused the upgrade with an ordinary response: relay it and close.
    // The body is buffered and framed here, so the agent's own framing headers go.
    const headers = removeRawHeaders(checked.headers, FRAMING)
    if (response.errorCode) headers.push(ERROR_CODE_HEADER, response.errorCode)
    const body = reader.body()
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of body) {
      chunks.push(chunk as Buffer)
      size += (chunk as Buffer).length
      if (size > maxHeadSize) throw new GwError('GW_ERR_MESSAGE_TOO_LARGE', 'the refusal of an upgrade is too large')
    }
    headers.push('Content-Length', String(size), 'Connection', 'close')
    writeRawResponse(socket, checked.status, checked.statusMessage, headers, Buffer.concat(chunks))
    socket.end()
  }

  run().catch((err: Error) => {
    const code: ErrorCode = err instanceof GwError ? err.code : 'GW_ERR_UPSTREAM_FAILED'
    sendRawErrorPage(req, socket, code === 'GW_ERR_MUX_CLOSED' ? 'GW_ERR_AGENT_OFFLINE' : code, err.message)
    stream.destroy()
  })
}
