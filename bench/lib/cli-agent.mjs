// The agent as users run it: `gw http` from packages/cli, for scenario 8 where the policy
// file and the terminal UI are CLI features. With `tty`, it runs under script(1) so that
// stdout is a terminal and the Ink UI renders as it would for a person.
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { rootDir, startCommand } from './children.mjs'

const BIN = join(rootDir, 'packages/cli/bin/run.js')

/** What the built CLI's `gw http` supports, or why it cannot be used yet. */
export async function cliFeatures() {
  if (!existsSync(BIN)) return { available: false, reason: 'packages/cli/bin/run.js does not exist yet' }
  const help = await new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'http', '--help'], { cwd: rootDir, timeout: 20_000 }, (err, stdout, stderr) => resolve(err ? '' : `${stdout}${stderr}`))
  })
  if (!help) return { available: false, reason: '`gw http --help` failed: the http command is not built yet' }
  return {
    available: true,
    policyFile: help.includes('--policy-file'),
    noTui: help.includes('--no-tui') || help.includes('--[no-]tui'),
    relay: help.includes('--relay'),
    // The flag exists before the UI does; an empty tui/ means nothing would be drawn.
    tui: /--(\[no-\])?tui/.test(help) && existsSync(join(rootDir, 'packages/cli/dist/tui')) &&
      readdirSync(join(rootDir, 'packages/cli/dist/tui')).some((f) => f.endsWith('.js')),
  }
}

function quote(s) {
  return `'${String(s).replaceAll("'", "'\\''")}'`
}

/**
 * Start `gw http <upstream> --relay … --subdomain <name>`. It returns at once: with
 * `--log-level warn` there is no start-up line to wait for, so the caller waits for the
 * route to answer (waitRoutable).
 */
export async function startCliAgent({ upstreamUrl, relayUrl, name, extraArgs = [], tty = false, nodeArgs = [], env = {} }) {
  const args = [...nodeArgs, BIN, 'http', upstreamUrl, '--relay', relayUrl, '--subdomain', name, ...extraArgs]
  if (!tty) {
    return startCommand(process.execPath, [...args, '--no-tui', '--log-format', 'json'], { immediate: true, env })
  }
  const cmd = `stty cols 120 rows 40; exec ${[process.execPath, ...args, '--tui'].map(quote).join(' ')}`
  return startCommand('script', ['-qfec', cmd, '/dev/null'], {
    env: { TERM: 'xterm-256color', FORCE_COLOR: '1', ...env },
    immediate: true,
  })
}
