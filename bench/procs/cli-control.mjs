// Loaded with `node --import` into the gw CLI processes the harness starts (lib/gw-cli.mjs),
// so that they answer the same control messages as the programmatic children (control.mjs:
// full GC, heap figures, the V8 profiler). It does nothing else, and nothing at all when the
// process has no IPC channel.
import { answerControl } from './control.mjs'

if (process.send) {
  answerControl()
  // The channel must not keep the CLI alive once it has shut down on its own.
  process.channel?.unref()
  // The harness stops a child by closing the channel: end the CLI as Ctrl-C would.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'))
}
