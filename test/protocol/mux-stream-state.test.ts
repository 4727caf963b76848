/**
 * The stream lifecycle's pure transitions (mux/stream-state.ts), checked as tables: every
 * state a stream can be in, crossed with every combination of the flags that move it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  FrameFlag,
  StreamState,
  INVALID_STREAM_TRANSITION as INVALID,
  processFlags,
  sendFlags,
  afterSend,
  closeLocal,
  isTerminal,
  canReceive,
  canSend,
} from '@gw/protocol'

const { ESTABLISHED, OPENING, QUEUED, ACK_OWED, LOCAL_FIN, REMOTE_FIN, RESET } = StreamState
const { ACK, FIN, RST } = FrameFlag

const NAMES: Record<number, string> = {
  [ESTABLISHED]: 'ESTABLISHED', [OPENING]: 'OPENING', [QUEUED]: 'QUEUED', [ACK_OWED]: 'ACK_OWED',
  [LOCAL_FIN]: 'LOCAL_FIN', [REMOTE_FIN]: 'REMOTE_FIN', [RESET]: 'RESET', [INVALID]: 'INVALID',
}
function name(state: number): string {
  if (NAMES[state]) return NAMES[state]!
  return Object.entries(StreamState).filter(([, bit]) => bit !== 0 && (state & bit) !== 0).map(([n]) => n).join('|')
}

// [state, flags that arrive, state after]
const PROCESS: Array<[number, number, number]> = [
  [OPENING, ACK, ESTABLISHED],
  [OPENING, ACK | FIN, REMOTE_FIN],
  [OPENING, FIN, OPENING | REMOTE_FIN],
  [OPENING, RST, RESET],
  [OPENING, 0, OPENING],
  [ACK_OWED, ACK, ACK_OWED],
  // The peer's FIN must not cancel the ACK we owe: a whole request arrives before its answer.
  [ACK_OWED, FIN, ACK_OWED | REMOTE_FIN],
  [ACK_OWED, RST, RESET],
  [ESTABLISHED, ACK, ESTABLISHED],
  [ESTABLISHED, FIN, REMOTE_FIN],
  [ESTABLISHED, RST, RESET],
  [ESTABLISHED, FIN | RST, RESET],
  [LOCAL_FIN, FIN, LOCAL_FIN | REMOTE_FIN],
  [LOCAL_FIN, RST, RESET],
  [LOCAL_FIN, 0, LOCAL_FIN],
  [REMOTE_FIN, FIN, INVALID],
  [REMOTE_FIN, ACK, REMOTE_FIN],
  [REMOTE_FIN, RST, RESET],
  [ACK_OWED | REMOTE_FIN, FIN, INVALID],
  [LOCAL_FIN | REMOTE_FIN, FIN, INVALID],
  // A stream whose SYN has not left cannot be known to the peer; a reset one is gone.
  [QUEUED, FIN, QUEUED],
  [QUEUED, RST, QUEUED],
  [RESET, FIN, RESET],
  [RESET, RST, RESET],
  [RESET, ACK, RESET],
]

// [state, flags our next frame carries, state after it left]
const SEND: Array<[number, number, number]> = [
  [QUEUED, FrameFlag.SYN, OPENING],
  [ACK_OWED, ACK, ESTABLISHED],
  [ACK_OWED | REMOTE_FIN, ACK, REMOTE_FIN],
  [OPENING, 0, OPENING],
  [ESTABLISHED, 0, ESTABLISHED],
  [REMOTE_FIN, 0, REMOTE_FIN],
]

// [state, state after we send FIN]
const CLOSE: Array<[number, number]> = [
  [OPENING, OPENING | LOCAL_FIN],
  [ESTABLISHED, LOCAL_FIN],
  [REMOTE_FIN, LOCAL_FIN | REMOTE_FIN],
  [LOCAL_FIN, INVALID],
  [RESET, INVALID],
  [QUEUED, INVALID],
]

// [state, terminal, can receive, can send]
const PREDICATES: Array<[number, boolean, boolean, boolean]> = [
  [QUEUED, false, true, false],
  [OPENING, false, true, true],
  [ACK_OWED, false, true, true],
  [ESTABLISHED, false, true, true],
  [LOCAL_FIN, false, true, false],
  [REMOTE_FIN, false, false, true],
  [LOCAL_FIN | REMOTE_FIN, true, false, false],
  [RESET, true, false, false],
]

describe('stream lifecycle transitions', () => {
  it('processFlags: incoming ACK, FIN and RST', () => {
    for (const [state, flags, expected] of PROCESS) {
      assert.equal(processFlags(state, flags), expected, `${name(state)} + flags 0x${flags.toString(16)} → ${name(expected)}`)
    }
  })

  it('sendFlags and afterSend: the SYN and the owed ACK ride on the next frame', () => {
    for (const [state, flags, after] of SEND) {
      assert.equal(sendFlags(state), flags, `${name(state)} sends 0x${flags.toString(16)}`)
      assert.equal(afterSend(state), after, `${name(state)} → ${name(after)} once sent`)
    }
  })

  it('closeLocal: FIN once, and only on an opened stream', () => {
    for (const [state, expected] of CLOSE) assert.equal(closeLocal(state), expected, `${name(state)} FIN → ${name(expected)}`)
  })

  it('isTerminal, canReceive, canSend', () => {
    for (const [state, terminal, receive, send] of PREDICATES) {
      assert.equal(isTerminal(state), terminal, `${name(state)} terminal`)
      assert.equal(canReceive(state), receive, `${name(state)} can receive`)
      assert.equal(canSend(state), send, `${name(state)} can send`)
    }
  })

  it('every path from either opening ends terminal after FIN both ways, in either order', () => {
    for (const start of [QUEUED, ACK_OWED]) {
      for (const localFirst of [true, false]) {
        let s: number = start
        s = afterSend(s) // SYN or ACK leaves with the first frame
        if (s === OPENING) s = processFlags(s, ACK)
        assert.equal(s, ESTABLISHED)
        if (localFirst) {
          s = closeLocal(s)
          assert.equal(isTerminal(s), false)
          s = processFlags(s, FIN)
        } else {
          s = processFlags(s, FIN)
          assert.equal(isTerminal(s), false)
          s = closeLocal(s)
        }
        assert.equal(isTerminal(s), true, `${name(start)}, ${localFirst ? 'local' : 'remote'} FIN first`)
      }
    }
  })
})
