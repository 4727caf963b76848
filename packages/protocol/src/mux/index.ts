/**
 * The yamux multiplexer: many streams over one WebSocket (or any byte Duplex).
 *
 * @example
 * const session = new Session(createWebSocketTransport(ws), { client: true })
 * session.on('stream', (stream) => stream.pipe(stream))
 * const stream = session.open()
 * stream.end('hello')
 */
export { Session, type SessionOptions, type SessionEventMap } from './session.js'
export {
  DEFAULT_ACCEPT_BACKLOG,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_KEEPALIVE_TIMEOUT,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_STREAMS,
  DEFAULT_MAX_WINDOW,
  DEFAULT_MAX_UNACKED_STREAMS,
} from './session.js'
export { Stream, type StreamHost } from './stream.js'
export {
  StreamState,
  INVALID,
  processFlags,
  sendFlags,
  afterSend,
  closeLocal,
  isTerminal,
  canReceive,
  canSend,
  type StreamStateValue,
} from './stream-state.js'
export { createWebSocketTransport, type WebSocketTransportOptions } from './websocket-transport.js'
export { FrameDecoder, validateHeader, type FrameHandler, type FrameDecoderOptions } from './frame-decoder.js'
export {
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_SIZE,
  FrameFlag,
  FrameType,
  GoAwayCode,
  INITIAL_STREAM_WINDOW,
  YAMUX_VERSION,
  type FrameTypeValue,
} from './frame.js'
