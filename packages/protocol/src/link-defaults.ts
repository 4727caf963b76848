/**
 * The settings both ends of an agent link must agree on, in one place: the relay and the
 * agent each take them from here, so a change cannot leave one side expecting pings the
 * other never sends, or refusing a head the other considers small.
 */

export const LINK_DEFAULTS = {
  /** A link with no traffic (pongs included) for this long is dead, in ms. */
  heartbeatTimeout: 15_000,
  /** The handshake (control stream, HELLO, WELCOME) must finish within this, in ms. */
  handshakeTimeout: 10_000,
  /** Largest HTTP head either side accepts from its HTTP peer, in bytes. */
  maxHeaderSize: 64 * 1024,
  /**
   * Largest message on the control stream (HELLO, WELCOME, REFUSE, NOTICE). Small,
   * because the relay reads HELLO before it knows who is asking.
   */
  maxControlMessage: 64 * 1024,
  /**
   * Largest WebSocket message. The mux batches a turn's frames into one message, so this
   * bounds a batch, not a frame: 16 MiB is a full grown window plus headers.
   */
  wsMaxPayload: 16 * 1024 * 1024,
} as const

/** Never ping more often than this, whatever the timeout. */
const MIN_KEEPALIVE_INTERVAL = 500

/**
 * The mux keepalive for a heartbeat timeout: three pings per timeout, so two can be lost
 * before the link is declared dead.
 */
export function keepAliveFor(heartbeatTimeout: number): { keepAliveInterval: number; keepAliveTimeout: number } {
  return {
    keepAliveInterval: Math.max(MIN_KEEPALIVE_INTERVAL, Math.floor(heartbeatTimeout / 3)),
    keepAliveTimeout: heartbeatTimeout,
  }
}

/**
 * The largest head message for HTTP heads of up to `maxHeaderSize` bytes: JSON escaping
 * and the head's own fields can double the size, plus a little for the fixed fields.
 */
export function maxHeadMessageFor(maxHeaderSize: number): number {
  return maxHeaderSize * 2 + 4096
}
