/**
 * The public surface of @gw/protocol: everything the relay, the agent, the tests and the
 * benchmarks may use. The package exports only this file, so a name that is not listed
 * here is internal and can change without touching another package.
 *
 * @example
 * import { Session, createWebSocketTransport, MessageReader } from '@gw/protocol'
 */

// Wire error codes and the errors that carry them.
export { ErrorCodes, isErrorCode, CodedError, GwError, MuxError, HandshakeError, UpstreamError } from './errors.js'
export type { ErrorCode } from './errors.js'

// The error page and the header that names a code.
export { ERROR_CODE_HEADER, renderErrorPage, renderCodedErrorPage } from './error-page.js'
export type { ErrorPage } from './error-page.js'

// Heads and control messages: their shapes, their checks, and header helpers.
export {
  AGENT_PATH,
  PROTOCOL_VERSION,
  HOP_BY_HOP,
  checkCacheHit,
  checkCodedMessage,
  checkHello,
  checkInternalEndpoints,
  checkRequestHead,
  checkResponseHead,
  checkTcpHead,
  checkWelcome,
  ENDPOINT_PROTOS,
  getRawHeader,
  removeRawHeaders,
  stripHopByHop,
  REQUEST_ID_PATTERN,
  INTERNAL_HOST_PATTERN,
  INTERNAL_RAW_HOST_PATTERN,
  INTERNAL_RAW_TARGET_PATTERN,
  MAX_INTERNAL_ENDPOINTS,
  MAX_CLIENT_CERT_PEM,
  MAX_TERMINATE_TLS_CAS,
  MAX_TERMINATE_TLS_CA_BYTES,
  terminateTlsDigest,
} from './heads.js'
export type { AssignedEndpoint, CacheHit, ClientCertificate, ConnectionTls, TerminateTlsRequest, EndpointProto, EndpointRequest, Hello, InternalEndpoint, InternalEndpoints, RawInternalEndpoint, TcpHead, Notice, Refuse, RequestHead, ResponseHead, Welcome } from './heads.js'

// Message framing on a stream: the reader is the one decoder, the writer the one encoder.
// The codec's encode functions are exported for codec tests and fuzzing; callers write
// through a MessageWriter.
export {
  DEFAULT_MAX_MESSAGE_SIZE,
  MESSAGE_HEADER_SIZE,
  MessageDecoder,
  MessageType,
  decodeJson,
  encodeJsonMessage,
  encodeMessageHeader,
} from './message-codec.js'
export type { DecodedMessage, MessageDecoderHandlers, MessageTypeValue } from './message-codec.js'
export { DISCARD_BODY, MessageReader, endMessage, writeJsonMessage } from './message-stream.js'
export { MessageWriter, sendFramedBody } from './message-writer.js'
export type { BodyControl, BodyReadable, BodySink, MessageReaderOptions } from './message-stream.js'

export { isLoopbackHost } from './loopback.js'

// What both ends of a link agree on.
export { LINK_DEFAULTS, keepAliveFor, maxHeadMessageFor } from './link-defaults.js'

// The yamux multiplexer.
export {
  Session,
  Stream,
  createWebSocketTransport,
  FrameDecoder,
  validateHeader,
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_SIZE,
  FrameFlag,
  FrameType,
  GoAwayCode,
  INITIAL_STREAM_WINDOW,
  YAMUX_VERSION,
  DEFAULT_ACCEPT_BACKLOG,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_KEEPALIVE_TIMEOUT,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_STREAMS,
  DEFAULT_MAX_WINDOW,
  DEFAULT_MAX_UNACKED_STREAMS,
  // The stream lifecycle's pure transitions, for tests and tools.
  StreamState,
  INVALID as INVALID_STREAM_TRANSITION,
  processFlags,
  sendFlags,
  afterSend,
  closeLocal,
  isTerminal,
  canReceive,
  canSend,
} from './mux/index.js'
export type {
  SessionOptions,
  SessionEventMap,
  WebSocketTransportOptions,
  FrameHandler,
  FrameDecoderOptions,
  FrameTypeValue,
  StreamHost,
  StreamStateValue,
} from './mux/index.js'
