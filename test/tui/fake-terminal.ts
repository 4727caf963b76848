/**
 * A terminal for Ink without a terminal, after Ink's own test helper
 * (vadimdemedes/ink: test/helpers/create-stdout.ts): stdout records every frame Ink
 * writes (render in debug mode writes each frame whole), stdin is a stream the test
 * types into, flagged as a TTY so Ink turns on raw-mode key handling.
 */
import { EventEmitter } from 'node:events'
import { PassThrough } from 'node:stream'

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '')
}

export class FakeStdout extends EventEmitter {
  columns: number
  rows: number
  isTTY = false
  frames: string[] = []
  writes = 0

  constructor(columns = 80, rows = 24) {
    super()
    this.columns = columns
    this.rows = rows
  }

  write(chunk: string | Uint8Array): boolean {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
    this.writes++
    // Cursor and screen control alone is not a frame.
    if (stripAnsi(text).trim() !== '') this.frames.push(text)
    return true
  }

  lastFrame(): string {
    return stripAnsi(this.frames.at(-1) ?? '')
  }

  resize(columns: number, rows: number): void {
    this.columns = columns
    this.rows = rows
    this.emit('resize')
  }
}

export class FakeStdin extends PassThrough {
  isTTY = true
  rawMode = false
  setRawMode(on: boolean): this {
    this.rawMode = on
    return this
  }
  ref(): this {
    return this
  }
  unref(): this {
    return this
  }
}

export const KEYS = {
  up: '\x1b[A',
  down: '\x1b[B',
  pageUp: '\x1b[5~',
  pageDown: '\x1b[6~',
  enter: '\r',
  escape: '\x1b',
  backspace: '\x7f',
  ctrlC: '\x03',
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
