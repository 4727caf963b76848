/**
 * Server-sent events, message by message, for the `on_event_stream_message` phase
 * (ngrok's `sse-find-replace`). The upstream's `text/event-stream` body is cut into
 * messages at each blank line (any of the spec's line ends: CRLF, LF, CR), across chunk
 * boundaries; each message goes through the phase as it arrives, so the stream stays a
 * stream. A message no rule changed is passed on byte for byte; a changed one is written
 * back with LF line ends, its data lines rebuilt from the new value.
 *
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import { StringDecoder } from 'node:string_decoder'
import { Transform } from 'node:stream'
import { PolicyRuntimeError } from './errors.js'

/** One message: its lines as `[field, value]` (a comment line has field ''), in order. */
export class SseMessage {
  readonly lines: Array<[string, string]>
  changed = false

  constructor(lines: Array<[string, string]>) {
    this.lines = lines
  }

  /** A field's value; `data` lines join with LF, as a client sees them. */
  get(field: string): string | undefined {
    const values = this.lines.filter(([f]) => f === field).map(([, v]) => v)
    if (values.length === 0) return undefined
    return field === 'data' ? values.join('\n') : values[values.length - 1]
  }

  /** Replace a field's value: its lines become one (`data`: one per line of the value), where the first was. */
  set(field: string, value: string): void {
    const at = this.lines.findIndex(([f]) => f === field)
    const parts: Array<[string, string]> = (field === 'data' ? value.split(/\r\n|\r|\n/) : [value]).map((v) => [field, v])
    const kept = this.lines.filter(([f]) => f !== field)
    const insertAt = at === -1 ? kept.length : this.lines.slice(0, at).filter(([f]) => f !== field).length
    kept.splice(insertAt, 0, ...parts)
    this.lines.splice(0, this.lines.length, ...kept)
    this.changed = true
  }

  serialize(): string {
    return this.lines.map(([f, v]) => (f === '' ? `:${v}` : `${f}: ${v}`)).join('\n') + '\n\n'
  }
}

function parseLines(text: string): Array<[string, string]> {
  return text.split(/\r\n|\r|\n/).map((line): [string, string] => {
    if (line.startsWith(':')) return ['', line.slice(1)]
    const colon = line.indexOf(':')
    if (colon === -1) return [line, '']
    const value = line.slice(colon + 1)
    return [line.slice(0, colon), value.startsWith(' ') ? value.slice(1) : value]
  })
}

/** A blank line: two line ends in a row. A CR at the very end may be the first half of a CRLF, so it waits for more. */
const MESSAGE_END = /(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n|$)|\n)/

/**
 * A Transform from the raw stream to the rewritten one. `onMessage` may change the
 * message; a message longer than `limit` characters without its blank line fails the
 * stream with GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE (rather than pass it unread).
 */
export function createSseTransform(onMessage: (m: SseMessage) => void | Promise<void>, limit: number): Transform {
  const decoder = new StringDecoder('utf8')
  let pending = ''

  async function emit(t: Transform, raw: string, terminator: string): Promise<void> {
    const message = new SseMessage(parseLines(raw))
    await onMessage(message)
    t.push(message.changed ? message.serialize() : raw + terminator)
  }

  async function drain(t: Transform, final: boolean): Promise<void> {
    for (;;) {
      const m = MESSAGE_END.exec(pending)
      if (!m) break
      const raw = pending.slice(0, m.index)
      const terminator = m[0]
      pending = pending.slice(m.index + terminator.length)
      await emit(t, raw, terminator)
    }
    if (pending.length > limit) throw new PolicyRuntimeError('GW_ERR_POLICY_UPSTREAM_BODY_TOO_LARGE', `an event-stream message exceeds ${limit} characters without its blank line`)
    if (final && pending !== '') {
      // The stream ended inside a message: the spec drops it, and so does a client; pass it on as it was.
      t.push(pending)
      pending = ''
    }
  }

  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      pending += decoder.write(chunk)
      drain(this, false).then(() => cb(), cb)
    },
    flush(cb) {
      pending += decoder.end()
      drain(this, true).then(() => cb(), cb)
    },
  })
}
