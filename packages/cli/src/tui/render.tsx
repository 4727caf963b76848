/**
 * Starts the TUI on a terminal and makes sure the terminal comes back as it was.
 *
 * On a TTY the UI takes the alternate screen (like less or htop), so the shell's
 * scrollback is untouched and quitting leaves no half-drawn frames. Whatever ends the
 * process (q, Ctrl-C, an uncaught exception, SIGTERM, SIGHUP) the guard leaves the
 * alternate screen, shows the cursor and turns raw mode off before anything else is
 * printed, so a crash's stack trace lands on a usable terminal.
 */
import './production-react.js'
import { createElement } from 'react'
import { render } from 'ink'
import { App, type AppProps } from './app.js'

export interface TuiOptions extends Pick<AppProps, 'events' | 'getStatus' | 'capture' | 'metrics' | 'replay' | 'apiUrl'> {
  stdout?: NodeJS.WriteStream
  stdin?: NodeJS.ReadStream
  /** Batch window for repaints in ms (default 50: at most 20 repaints a second). */
  refreshMs?: number
  /** Write every frame whole, without cursor movement (tests read the last frame). */
  debug?: boolean
  /** Use the alternate screen; default: when stdout is a TTY. */
  alternateScreen?: boolean
}

export interface Tui {
  stop(): void
  waitUntilExit(): Promise<void>
}

const ENTER_ALT = '\x1b[?1049h'
const LEAVE_ALT = '\x1b[?1049l'
const SHOW_CURSOR = '\x1b[?25h'
const HIDE_CURSOR = '\x1b[?25l'
const SIGNALS = ['SIGTERM', 'SIGHUP'] as const

/** Installs the restore-on-exit hooks; returns the restore function (idempotent). */
export function createTerminalGuard(stdout: NodeJS.WriteStream, stdin: NodeJS.ReadStream, alternateScreen: boolean): {
  restore(): void
  dispose(): void
  /** Signal listeners that belong to the UI (Ink's signal-exit), not to the app. */
  internal: Set<Function>
} {
  let restored = false
  const internal = new Set<Function>()
  function restore(): void {
    if (restored) return
    restored = true
    try {
      if (stdin.isTTY && typeof stdin.setRawMode === 'function') stdin.setRawMode(false)
    } catch {
      // stdin may already be closed; the rest still matters.
    }
    try {
      stdout.write(SHOW_CURSOR + (alternateScreen ? LEAVE_ALT : ''))
    } catch {
      // stdout may be gone (terminal closed); nothing left to restore then.
    }
  }
  // `uncaughtExceptionMonitor` runs before Node prints the error and exits, without
  // changing whether it exits; `exit` covers process.exit() from anywhere.
  const onCrash = (): void => restore()
  const onSignal = (signal: NodeJS.Signals): void => {
    restore()
    // An app that handles the signal (gw http stops gracefully) decides what happens. If
    // nobody but the UI listens, the signal must still end the process as it would have
    // without us: drop our listener and send it again once the other listeners ran.
    const others = process.listeners(signal).filter((l) => l !== onSignal && !internal.has(l))
    if (others.length === 0) {
      dispose()
      setImmediate(() => process.kill(process.pid, signal))
    }
  }
  process.on('uncaughtExceptionMonitor', onCrash)
  process.on('exit', onCrash)
  for (const s of SIGNALS) process.on(s, onSignal)
  function dispose(): void {
    process.off('uncaughtExceptionMonitor', onCrash)
    process.off('exit', onCrash)
    for (const s of SIGNALS) process.off(s, onSignal)
  }
  return { restore, dispose, internal }
}

/**
 * @example
 * const tui = startTui({ events, getStatus, capture, metrics, replay, apiUrl: api.url })
 * await tui.waitUntilExit() // the user pressed q
 */
export function startTui(options: TuiOptions): Tui {
  const stdout = options.stdout ?? process.stdout
  const stdin = options.stdin ?? process.stdin
  const alternateScreen = options.alternateScreen ?? (stdout.isTTY === true && options.debug !== true)
  const guard = createTerminalGuard(stdout, stdin, alternateScreen)
  if (alternateScreen) stdout.write(ENTER_ALT + HIDE_CURSOR)

  // No JSX in this file: the compiler would import react/jsx-runtime above
  // production-react.js, loading React's development build beside the production one.
  const inkCost = { current: 0 }
  const before = new Set(SIGNALS.flatMap((sig) => process.listeners(sig)))
  const instance = render(
    createElement(App, {
      inkCost,
      events: options.events,
      getStatus: options.getStatus,
      capture: options.capture,
      metrics: options.metrics,
      replay: options.replay,
      apiUrl: options.apiUrl,
      refreshMs: options.refreshMs ?? 50,
    }),
    {
      stdout,
      stdin,
      // Ctrl-C is a key like q here: the app quits through the same path.
      exitOnCtrlC: false,
      // Repaints are batched by the app; this caps what Ink itself may do.
      maxFps: 20,
      debug: options.debug ?? false,
      patchConsole: true,
      onRender: ({ renderTime }) => {
        inkCost.current = renderTime
      },
    },
  )

  // Ink listens for signals too (signal-exit, to unmount); those are not the app's.
  for (const sig of SIGNALS) for (const l of process.listeners(sig)) if (!before.has(l)) guard.internal.add(l)

  const exited = instance.waitUntilExit().then(
    () => undefined,
    () => undefined,
  ).finally(() => {
    guard.restore()
    guard.dispose()
  })

  return {
    stop() {
      instance.unmount()
    },
    waitUntilExit() {
      return exited
    },
  }
}
