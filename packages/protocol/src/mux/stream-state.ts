/**
 * A yamux stream's lifecycle as one value, moved only by the pure functions below, as
 * hashicorp/yamux's stream.go keeps `state streamState` and changes it only in
 * `processFlags()` (flags that arrive) and `sendFlags()` (flags that leave).
 *
 * The value is a set of bits rather than hashicorp's enumeration, because gw defers its
 * ACK of an inbound stream to the stream's first frame: "our ACK is owed" must survive
 * the peer's FIN (a request arrives whole, SYN to FIN, before the response that carries
 * the ACK). With an enumeration, SYN_RECEIVED → REMOTE_CLOSE would forget it.
 *
 *   opened here:  QUEUED ─SYN→ OPENING ─ACK←─ (established: 0)
 *   opened there: ACK_OWED ─ACK→ (established)
 *   either FIN sets LOCAL_FIN or REMOTE_FIN; both set is closed
 *   RST either way, or the link closing: RESET
 *
 * QUEUED is hashicorp's streamInit: the stream exists but its SYN waits, because the peer
 * already holds as many un-ACKed streams of ours as its accept backlog takes.
 *
 * Plain numbers in and out, so the per-frame path allocates nothing;
 * test/protocol/mux-stream-state.test.ts checks every function as a table.
 */
import { FrameFlag } from './frame.js'

export const StreamState = {
  /** Both ways open, SYN and ACK exchanged. */
  ESTABLISHED: 0,
  /** We sent SYN; the peer's ACK has not come. */
  OPENING: 1,
  /** We opened it, but its SYN waits for a slot in the peer's backlog. */
  QUEUED: 2,
  /** The peer opened it; our ACK has not gone out yet. */
  ACK_OWED: 4,
  /** We sent FIN. */
  LOCAL_FIN: 8,
  /** The peer sent FIN. */
  REMOTE_FIN: 16,
  /** Reset by either side, or the link closed. Terminal. */
  RESET: 32,
} as const

export type StreamStateValue = number

/** What a transition returns when the flags or the step are illegal in the state. */
export const INVALID = -1

const { OPENING, QUEUED, ACK_OWED, LOCAL_FIN, REMOTE_FIN, RESET } = StreamState

/**
 * The state after a frame with `flags` arrived on an existing stream (SYN is the
 * session's: it creates the stream in ACK_OWED), or INVALID.
 * - ACK accepts a stream we opened; elsewhere it is redundant and ignored, as hashicorp does.
 * - FIN is legal once.
 * - RST ends the stream from any state.
 * A stream that is reset, or whose SYN has not left (the peer cannot know it), ignores all.
 */
export function processFlags(state: StreamStateValue, flags: number): StreamStateValue {
  if ((state & (RESET | QUEUED)) !== 0) return state
  if ((flags & FrameFlag.RST) !== 0) return RESET
  let next = state
  if ((flags & FrameFlag.ACK) !== 0) next &= ~OPENING
  if ((flags & FrameFlag.FIN) !== 0) {
    if ((next & REMOTE_FIN) !== 0) return INVALID
    next |= REMOTE_FIN
  }
  return next
}

/** Flags our next frame on the stream must carry: SYN to open it, or the owed ACK. */
export function sendFlags(state: StreamStateValue): number {
  if ((state & QUEUED) !== 0) return FrameFlag.SYN
  if ((state & ACK_OWED) !== 0) return FrameFlag.ACK
  return 0
}

/** The state once a frame carrying `sendFlags(state)` has gone out. */
export function afterSend(state: StreamStateValue): StreamStateValue {
  if ((state & QUEUED) !== 0) return (state & ~QUEUED) | OPENING
  return state & ~ACK_OWED
}

/** The state after we send FIN, or INVALID when we may not (sent already, reset, SYN not sent). */
export function closeLocal(state: StreamStateValue): StreamStateValue {
  if ((state & (LOCAL_FIN | RESET | QUEUED)) !== 0) return INVALID
  return state | LOCAL_FIN
}

/** Finished both ways, or reset: the session forgets the stream. */
export function isTerminal(state: StreamStateValue): boolean {
  return (state & RESET) !== 0 || (state & (LOCAL_FIN | REMOTE_FIN)) === (LOCAL_FIN | REMOTE_FIN)
}

/** The peer may still send data: it has sent neither FIN nor RST. */
export function canReceive(state: StreamStateValue): boolean {
  return (state & (REMOTE_FIN | RESET)) === 0
}

/** We may still send data: the SYN went out and we have sent neither FIN nor RST. */
export function canSend(state: StreamStateValue): boolean {
  return (state & (LOCAL_FIN | RESET | QUEUED)) === 0
}
