/**
 * One connection to the relay: the WebSocket, the yamux session on it, and the
 * handshake on the control stream. Failures come out as CodedErrors that say which URL,
 * what went wrong, and which flag fixes it.
 */
import { WebSocket } from 'ws'
import {
  createWebSocketTransport,
  Session,
  type Stream,
  CodedError,
  HandshakeError,
  isLoopbackHost,
  MessageReader,
  MessageWriter,
  decodeJson,
  MessageType,
  AGENT_PATH,
  checkCodedMessage,
  checkWelcome,
  PROTOCOL_VERSION,
  LINK_DEFAULTS,
  keepAliveFor,
  type Hello,
  type Welcome,
} from '@gw/protocol'
import { CliError } from '../errors.js'

const CERT_ERRORS = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
])

/** The WebSocket URL agents dial for a relay given as http(s):// or ws(s)://, with or without a path. */
export function agentUrl(relay: string): URL {
  let url: URL
  try {
    url = new URL(/^[a-z]+:\/\//i.test(relay) ? relay : `https://${relay}`)
  } catch {
    throw new CliError('GW_ERR_INVALID_FLAG', `--relay "${relay}" is not a URL; give e.g. https://tunnel.example.com`)
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }
  const scheme = schemes[url.protocol]
  if (!scheme) throw new CliError('GW_ERR_INVALID_FLAG', `--relay "${relay}" must be an http, https, ws or wss URL, got ${url.protocol}`)
  url.protocol = scheme
  url.pathname = AGENT_PATH
  url.search = ''
  return url
}

export interface ConnectOptions {
  relay: string
  relayCa: string | undefined
  hello: Hello
  heartbeatTimeout: number
  handshakeTimeout: number
}

export interface RelayConnection {
  session: Session
  control: Stream
  controlReader: MessageReader
  welcome: Welcome
}

export async function connectRelay(options: ConnectOptions): Promise<RelayConnection> {
  const url = agentUrl(options.relay)
  const ws = await openWebSocket(url, options)
  const session = new Session(createWebSocketTransport(ws), {
    client: true,
    ...keepAliveFor(options.heartbeatTimeout),
  })
  try {
    const control = session.open()
    control.on('error', () => {})
    const controlReader = new MessageReader(control, { maxMessageSize: LINK_DEFAULTS.maxControlMessage })
    new MessageWriter(control).hello(options.hello)
    const welcome = await withTimeout(readWelcome(controlReader), options.handshakeTimeout, () =>
      new HandshakeError('GW_ERR_HANDSHAKE_TIMEOUT', `the relay at ${options.relay} did not complete the handshake within ${options.handshakeTimeout} ms`),
    )
    return { session, control, controlReader, welcome }
  } catch (err) {
    session.close(err as Error)
    throw err
  }
}

async function readWelcome(reader: MessageReader): Promise<Welcome> {
  const message = await reader.next()
  if (!message) throw new HandshakeError('GW_ERR_MUX_CLOSED', 'the relay closed the connection during the handshake')
  if (message.type === MessageType.REFUSE) {
    const refusal = checkCodedMessage(decodeJson(message.payload, 'refusal'), 'refusal')
    throw new HandshakeError(refusal.code, refusal.message)
  }
  if (message.type !== MessageType.WELCOME) {
    throw new HandshakeError('GW_ERR_MESSAGE_MALFORMED', `expected the relay's welcome, got message type 0x${message.type.toString(16)}`)
  }
  const welcome = checkWelcome(decodeJson(message.payload, 'welcome'))
  if (welcome.version !== PROTOCOL_VERSION) {
    throw new HandshakeError('GW_ERR_HANDSHAKE_VERSION', `the relay speaks protocol version ${welcome.version}, this agent ${PROTOCOL_VERSION}; upgrade the older side`)
  }
  return welcome
}

function openWebSocket(url: URL, options: ConnectOptions): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      // RFC 6455 masks client frames so bytes a browser script chose cannot pose as
      // HTTP to a proxy on the way. Inside TLS, or on loopback, no proxy reads them, and
      // an all-zero mask lets ws skip the copy and XOR of every byte the agent sends
      // (about 20% of download throughput, measured with a 512 MiB transfer).
      ...(url.protocol === 'wss:' || isLoopbackHost(url.hostname) ? { generateMask: keepZeroMask } : {}),
      handshakeTimeout: options.handshakeTimeout,
      maxPayload: LINK_DEFAULTS.wsMaxPayload,
      ...(options.relayCa ? { ca: options.relayCa } : {}),
    })
    const fail = (err: CodedError): void => {
      ws.removeAllListeners()
      ws.on('error', () => {})
      ws.terminate()
      reject(err)
    }
    ws.once('open', () => {
      ws.removeAllListeners('error')
      ws.removeAllListeners('unexpected-response')
      resolve(ws)
    })
    ws.once('unexpected-response', (_req, res) => {
      fail(new CliError('GW_ERR_RELAY_UNREACHABLE', `${options.relay} answered HTTP ${res.statusCode} instead of accepting the agent; is it a gw relay, and is --relay right?`))
    })
    ws.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? ''
      if (CERT_ERRORS.has(code)) {
        fail(new CliError('GW_ERR_RELAY_CERT_UNTRUSTED', `the relay at ${options.relay} presented a certificate this machine does not trust (${code}); ` +
          'pass --relay-ca <path to the relay\'s ca.pem> (the relay prints its path at start-up)', { cause: err }))
      } else {
        fail(new CliError('GW_ERR_RELAY_UNREACHABLE', `cannot reach the relay at ${options.relay}: ${err.message || code}; check --relay and that the relay is running`, { cause: err }))
      }
    })
  })
}

/** Leaves ws's mask buffer as it is: zeros. */
function keepZeroMask(): void {}

function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(error()), ms)
    }),
  ])
}
