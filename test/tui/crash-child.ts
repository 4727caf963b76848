// Run by terminal-guard.test: the TUI on a piped stdout forced into alternate-screen
// mode, then an uncaught exception, as a bug in the agent would throw; or, with `wait`,
// nothing until a signal arrives.
import { AgentEvents } from '@gw/cli/agent/events'
import { createCapture } from '@gw/cli/inspect/capture'
import { createMetrics } from '@gw/cli/inspect/metrics'
import { startTui } from '@gw/cli/tui/render'
import { agentStatus } from '../inspect/helpers.js'
import { FakeStdin } from './fake-terminal.js'

const events = new AgentEvents()
startTui({
  events,
  getStatus: () => agentStatus(),
  capture: createCapture(events, {}),
  metrics: createMetrics(events),
  replay: async () => {},
  apiUrl: 'http://127.0.0.1:4040',
  stdin: new FakeStdin() as unknown as NodeJS.ReadStream,
  alternateScreen: true,
})
if (process.argv[2] === 'wait') {
  // Stay up until a signal; the parent sends SIGTERM once the UI is drawn.
  setInterval(() => {}, 1000)
  process.stderr.write('ready\n')
} else {
  setTimeout(() => {
    throw new Error('boom from the agent')
  }, 300)
}
