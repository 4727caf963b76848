/**
 * ngrok's `--log stdout|stderr|false|PATH`: where log lines go. A file gets lines even
 * while the terminal UI owns the screen; stdout does not, since the UI draws there.
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import { CliError } from '../errors.js'

export interface LogDestination {
  /** `--log false`: no log lines at all. */
  off: boolean
  /** undefined: the logger's own batched stdout writer. */
  write: ((line: string) => void) | undefined
  /** The lines land on the terminal, where the UI would draw over them. */
  terminal: boolean
  close(): void
}

export function openLogDestination(value: string | undefined): LogDestination {
  const target = value ?? 'stdout'
  if (target === 'stdout') return { off: false, write: undefined, terminal: true, close: () => {} }
  if (target === 'stderr') return { off: false, write: (line) => process.stderr.write(line + '\n'), terminal: true, close: () => {} }
  if (target === 'false' || target === 'none') return { off: true, write: undefined, terminal: false, close: () => {} }
  let fd: number
  try {
    fd = openSync(target, 'a', 0o600)
  } catch (err) {
    throw new CliError('GW_ERR_INVALID_FLAG', `--log ${target}: cannot open it for appending (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give stdout, stderr, false or a writable file path`)
  }
  // Synchronous appends: a line is on disk before the process can die of what it reports.
  return { off: false, write: (line) => void writeSync(fd, line + '\n'), terminal: false, close: () => closeSync(fd) }
}
