/**
 * A crash never leaves the terminal broken: an uncaught exception in a process running
 * the TUI restores the cursor and leaves the alternate screen before Node prints the
 * error and exits non-zero.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const fixture = fileURLToPath(new URL('./crash-child.js', import.meta.url))

test('an uncaught exception restores the terminal first', { timeout: 30_000 }, () => {
  const run = spawnSync(process.execPath, [fixture], { encoding: 'latin1', timeout: 20_000, env: { ...process.env, CI: '' } })
  assert.notEqual(run.status, 0)
  assert.match(run.stderr, /boom from the agent/)
  const out = run.stdout
  assert.ok(out.includes('\x1b[?1049h'), 'the TUI took the alternate screen')
  assert.ok(out.lastIndexOf('\x1b[?25h') > out.lastIndexOf('\x1b[?25l'), 'the cursor is shown again')
  assert.ok(out.lastIndexOf('\x1b[?1049l') > out.lastIndexOf('\x1b[?1049h'), 'the alternate screen is left')
})
