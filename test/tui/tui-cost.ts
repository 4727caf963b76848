/**
 * Not a test: a measurement for the benchmark. Drives N requests a second through a
 * real AgentEvents for a few seconds, with and without the TUI drawing to a fake TTY,
 * and prints the CPU time each run took, so the TUI's share of the agent's one thread
 * can be compared run to run without the noise of real sockets.
 *
 *   node test/dist/tui/tui-cost.js [rate=1000] [seconds=5]
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { AgentEvents } from '@gw/cli/agent/events'
import { createCapture } from '@gw/cli/inspect/capture'
import { createMetrics } from '@gw/cli/inspect/metrics'
import { startTui } from '@gw/cli/tui/render'
import { agentStatus, simulateExchange } from '../inspect/helpers.js'
import { FakeStdin, FakeStdout } from './fake-terminal.js'

const rate = Number(process.argv[2] ?? 1000)
const seconds = Number(process.argv[3] ?? 5)

async function run(withTui: boolean): Promise<void> {
  const events = new AgentEvents()
  const capture = createCapture(events, {})
  const metrics = createMetrics(events)
  const stdout = new FakeStdout(100, 30)
  stdout.isTTY = true
  const tui = withTui
    ? startTui({ events, getStatus: () => agentStatus(), capture, metrics, replay: async () => {}, apiUrl: 'http://127.0.0.1:4040', stdout: stdout as unknown as NodeJS.WriteStream, stdin: new FakeStdin() as unknown as NodeJS.ReadStream, alternateScreen: false })
    : undefined
  await new Promise((r) => setTimeout(r, 300))
  const cpu0 = process.cpuUsage()
  const start = Date.now()
  const perSlice = Math.max(1, Math.round(rate / 100))
  for (let i = 0; i < seconds * 100; i++) {
    for (let j = 0; j < perSlice; j++) simulateExchange(events, { target: `/p/${i}/${j}`, responseBody: 'hello' })
    await new Promise((r) => setTimeout(r, 10))
  }
  const cpu = process.cpuUsage(cpu0)
  const line = { tui: withTui, rate, seconds, cpu_ms: Math.round((cpu.user + cpu.system) / 1000), wall_ms: Date.now() - start, stdout_writes: stdout.writes }
  // Ink patches console while the TUI runs: write to stderr directly.
  process.stderr.write(JSON.stringify(line) + '\n')
  tui?.stop()
}

if (process.argv[4] === 'child') {
  await run(process.argv[5] === 'tui')
  process.exit(0)
} else {
  // Each run in its own process, so module loading and JIT state do not leak between them.
  for (const mode of ['none', 'tui', 'none', 'tui']) {
    spawnSync(process.execPath, [fileURLToPath(import.meta.url), String(rate), String(seconds), 'child', mode], { stdio: ['ignore', 'ignore', 'inherit'] })
  }
}
