/**
 * One connected agent: its WebSocket, the yamux session on it, and the control stream
 * that carried the handshake. The relay opens one stream on this link per request.
 */
import type { WebSocket } from 'ws'
import type { Duplex } from 'node:stream'
import {
  createWebSocketTransport,
  Session,
  type Stream,
  GwError,
  HandshakeError,
  type ErrorCode,
  MessageReader,
  MessageWriter,
  MessageType,
  checkHello,
  PROTOCOL_VERSION,
  LINK_DEFAULTS,
  keepAliveFor,
  type AssignedEndpoint,
  type CacheHit,
  type Hello,
  type InternalEndpoints,
  type TerminateTlsRequest,
  checkInternalEndpoints,
  decodeJson,
} from '@gw/protocol'

/** Bytes of control messages waiting for the agent past which cache-hit notices are dropped. */
const CACHE_HIT_BACKLOG = 256 * 1024

export interface LinkOptions {
  heartbeatTimeout: number
  handshakeTimeout: number
  initialWindow?: number
  maxWindow?: number
  maxStreams?: number
}

export class AgentLink {
  readonly session: Session
  readonly remoteAddress: string
  endpoints: AssignedEndpoint[] = []
  /** name → the terminate-tls the relay runs for that https endpoint, and its digest (terminate-tls.ts). */
  readonly terminateTls = new Map<string, { digest: string; request: TerminateTlsRequest }>()
  owner = ''
  hello: Hello | undefined
  /**
   * When the agent's connection arrived (epoch ms). A cluster's takeover message drops only
   * links older than the one that took over (cluster/takeover.ts).
   */
  readonly openedAt = Date.now()
  private control: Stream | undefined
  private closedFlag = false
  private welcomed = false
  /** Refused, or told it is replaced: nothing more is said to the agent. */
  private ended = false
  /**
   * Set once the agent is admitted: a stream the agent opens (an internal request,
   * internal-endpoints.ts) goes here. Until then, and without it, such a stream is reset.
   */
  onAgentStream: ((stream: Stream) => void) | undefined
  /** Set once the agent is admitted: its INTERNAL_ENDPOINTS messages. */
  onInternalEndpoints: ((message: InternalEndpoints) => void) | undefined

  constructor(ws: WebSocket, remoteAddress: string, options: LinkOptions) {
    this.remoteAddress = remoteAddress
    const transport: Duplex = createWebSocketTransport(ws)
    this.session = new Session(transport, {
      client: false,
      ...keepAliveFor(options.heartbeatTimeout),
      ...(options.initialWindow ? { initialWindow: options.initialWindow } : {}),
      ...(options.maxWindow ? { maxWindow: options.maxWindow } : {}),
      ...(options.maxStreams ? { maxStreams: options.maxStreams } : {}),
    })
    this.session.once('close', () => {
      this.closedFlag = true
    })
  }

  get closed(): boolean {
    return this.closedFlag || this.session.closed
  }

  /** Wait for the agent's control stream and its HELLO. */
  async readHello(timeoutMs: number): Promise<Hello> {
    const control = await new Promise<Stream>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup()
        reject(new HandshakeError('GW_ERR_HANDSHAKE_TIMEOUT', `no handshake within ${timeoutMs} ms`))
      }, timeoutMs)
      const onStream = (s: Stream): void => {
        cleanup()
        // Both now, in the 'stream' event, not after the await: the frames after the
        // SYN may be in the same chunk, and a bad one among them tears the session down
        // (erroring this stream) before any microtask runs.
        s.on('error', () => {}) // errors surface through the session's 'close'
        // The agent opens the control stream; requests are opened by the relay. Any other
        // stream it opens is reset at once instead of waiting in the backlog, unless it is
        // admitted and the relay takes its internal requests.
        this.session.on('stream', (stream: Stream) => {
          if (this.onAgentStream) this.onAgentStream(stream)
          else refuseStream(stream)
        })
        resolve(s)
      }
      const onClose = (err?: Error): void => {
        cleanup()
        reject(err ?? new GwError('GW_ERR_MUX_CLOSED', 'the agent closed the link during the handshake'))
      }
      const cleanup = (): void => {
        clearTimeout(timer)
        this.session.off('stream', onStream)
        this.session.off('close', onClose)
      }
      this.session.on('stream', onStream)
      this.session.on('close', onClose)
    })
    this.control = control
    const reader = new MessageReader(control, { maxMessageSize: LINK_DEFAULTS.maxControlMessage })
    // Cleared once the hello is in: left to run, each link kept its timer, promise and
    // closures for the whole handshake timeout after it was admitted.
    let helloTimer: NodeJS.Timeout | undefined
    const hello = await Promise.race([
      reader.nextJson(MessageType.HELLO, 'hello', checkHello),
      new Promise<never>((_, reject) => {
        helloTimer = setTimeout(() => reject(new HandshakeError('GW_ERR_HANDSHAKE_TIMEOUT', 'the hello did not arrive in time')), timeoutMs).unref()
      }),
    ]).finally(() => clearTimeout(helloTimer))
    if (hello.version !== PROTOCOL_VERSION) {
      throw new HandshakeError(
        'GW_ERR_HANDSHAKE_VERSION',
        `the agent speaks protocol version ${hello.version}, this relay speaks ${PROTOCOL_VERSION}; upgrade the older side`,
      )
    }
    this.hello = hello
    // Later messages from the agent on the control stream: its internal endpoints; any
    // other is ignored. Reading them keeps the stream's window open.
    void (async () => {
      try {
        for (let message = await reader.next(); message; message = await reader.next()) {
          if (message.type !== MessageType.INTERNAL_ENDPOINTS || !this.onInternalEndpoints) continue
          let parsed: InternalEndpoints
          try {
            parsed = checkInternalEndpoints(decodeJson(message.payload, 'internal endpoints'))
          } catch {
            continue // a malformed one changes nothing
          }
          this.onInternalEndpoints(parsed)
        }
      } catch { /* the session's close handles it */ }
    })()
    return hello
  }

  /** `relays`: a cluster's relay URLs, for the agent to fail over to. */
  welcome(endpoints: AssignedEndpoint[], heartbeatTimeout: number, relays?: string[]): void {
    // Refused meanwhile (a takeover while its names were being announced): the agent has
    // its answer already.
    if (this.ended) return
    this.endpoints = endpoints
    this.welcomed = true
    new MessageWriter(this.control!).welcome({ version: PROTOCOL_VERSION, endpoints, heartbeatTimeout, ...(relays && relays.length > 0 ? { relays } : {}) })
  }

  /** Refuse the handshake with a coded error, then close once the agent has it. */
  refuse(code: ErrorCode, message: string): void {
    this.ended = true
    if (this.control) new MessageWriter(this.control).refuse({ code, message })
    // Give the frame a moment to leave before the link goes.
    setTimeout(() => this.close(new GwError(code, message)), 200).unref()
  }

  /**
   * Tell the agent about a request the cache answered, for its inspector. Dropped when it
   * would not fit a control message, or while the agent is not reading the control stream
   * (a slow link never makes the relay hold a backlog of them).
   */
  cacheHit(hit: CacheHit): void {
    const control = this.control
    if (!control || this.closedFlag || control.writableLength > CACHE_HIT_BACKLOG) return
    if (JSON.stringify(hit).length > LINK_DEFAULTS.maxControlMessage - 1024) return
    new MessageWriter(control).cacheHit(hit)
  }

  /** Tell the agent which internal endpoints its token's agents serve on this relay. */
  internalEndpoints(message: InternalEndpoints): void {
    if (!this.control || this.closedFlag) return
    new MessageWriter(this.control).internalEndpoints(message)
  }

  /** Tell the agent something (it was replaced…) and close the link. */
  notifyAndClose(code: ErrorCode, message: string): void {
    // Before its welcome the agent reads only a WELCOME or a REFUSE.
    if (!this.welcomed) return this.refuse(code, message)
    this.ended = true
    if (this.control) new MessageWriter(this.control).notice({ code, message })
    setTimeout(() => this.close(new GwError(code, message)), 200).unref()
  }

  openStream(): Stream {
    return this.session.open()
  }

  close(err?: Error): void {
    this.closedFlag = true
    this.session.close(err)
  }
}

function refuseStream(stream: Stream): void {
  stream.on('error', () => {})
  stream.destroy()
}
