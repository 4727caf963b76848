/**
 * A crash never leaves the terminal broken: an uncaught exception in a process running
 * the TUI restores the cursor and leaves the alternate screen before Node prints the
 * error and exits non-zero; SIGTERM does the same and still ends the process when the
 * app itself does not handle it.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
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

test('SIGTERM with no handler in the app still ends the process, terminal restored', { timeout: 30_000 }, async () => {
  const child = spawn(process.execPath, [fixture, 'wait'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '' } })
  let out = ''
  child.stdout.setEncoding('latin1').on('data', (d: string) => (out += d))
  let err = ''
  await new Promise<void>((resolve) => child.stderr.on('data', (d: Buffer) => {
    err += d
    if (err.includes('ready')) resolve()
  }))
  await new Promise((r) => setTimeout(r, 200))
  child.kill('SIGTERM')
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
  assert.equal(signal, 'SIGTERM', `exited with code ${code} instead of by the signal`)
  assert.ok(out.lastIndexOf('\x1b[?25h') > out.lastIndexOf('\x1b[?25l'), 'the cursor is shown again')
  assert.ok(out.lastIndexOf('\x1b[?1049l') > out.lastIndexOf('\x1b[?1049h'), 'the alternate screen is left')
})
