/**
 * The real `gw http` binary in a real terminal (tmux), as a user would run it: the TUI
 * shows a request that went through the tunnel, Enter opens its headers, `r` replays it
 * (the upstream is hit a second time), and `q` quits leaving the terminal as it was:
 * out of the alternate screen, cursor visible.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { Pool } from 'undici'
import { GW_BIN, startUpstream, tempDir, waitFor } from '../helpers/stack.js'
import { ansiToHtml } from './ansi-html.js'

function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'])
    return true
  } catch {
    return false
  }
}

/** A private tmux server and a temp dir, both removed when the test ends. */
function terminal(t: TestContext, socket: string): { dir: string; tmux: (...args: string[]) => string } {
  const dir = tempDir('gw-tui-')
  // Ink only draws the last frame when it thinks it runs in CI; a user's terminal is not CI.
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' }
  delete env.CI
  delete env.CONTINUOUS_INTEGRATION
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', socket, '-f', '/dev/null', ...args], { env, encoding: 'utf8' })
  t.after(() => {
    try {
      tmux('kill-server')
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, tmux }
}

test('gw http in tmux: row, detail, replay, quit', { skip: !hasTmux() && 'no tmux', timeout: 60_000 }, async (t) => {
  const { dir, tmux } = terminal(t, `gw-test-${process.pid}`)

  const hits: { url: string; probe: string | undefined }[] = []
  const upstream = await startUpstream((req, res) => {
    hits.push({ url: req.url!, probe: req.headers['x-probe'] as string | undefined })
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end('{"hello":"from upstream"}')
  })
  t.after(() => upstream.close())

  // The pane's shell writes gw's exit code down: under load the tmux server can leave
  // an exited gw unreaped (a zombie) for many seconds, and then cannot report its status.
  const exitFile = join(dir, 'exit-code')
  const command = [process.execPath, GW_BIN, 'http', String(upstream.port), '--inspect-addr', '127.0.0.1:0'].map((a) => `'${a}'`).join(' ') +
    `; echo $? > '${exitFile}'`
  const output = join(dir, 'pane-output')
  tmux(
    'new-session', '-d', '-s', 'gw', '-x', '100', '-y', '30', '-e', `GW_CONFIG=${join(dir, 'gw.yml')}`, command,
    ';', 'set-option', '-t', 'gw', 'remain-on-exit', 'on',
    // Every byte gw writes, to check how it leaves the terminal.
    ';', 'pipe-pane', '-t', 'gw', '-o', `cat >> '${output}'`,
  )
  const screen = (): string => tmux('capture-pane', '-p', '-t', 'gw')
  const until = (what: RegExp, ms = 15_000) => waitFor(() => what.test(screen()), ms, `${what} on screen; screen:\n${screen()}`)

  await until(/Forwarding\s+https?:\/\//)
  assert.equal(tmux('display-message', '-p', '-t', 'gw', '#{alternate_on}').trim(), '1', 'the TUI uses the alternate screen')
  const apiUrl = /Web Interface\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(screen())![1]!
  const tunnels = (await (await fetch(`${apiUrl}/api/tunnels`)).json()) as { tunnels: { public_url: string; proto: string }[] }
  const publicUrl = new URL(tunnels.tunnels.find((x) => x.proto === 'http')!.public_url)

  const pool = new Pool(`http://127.0.0.1:${publicUrl.port}`)
  t.after(() => pool.close())
  const res = await pool.request({ path: '/hello?from=tmux', method: 'GET', headers: { host: publicUrl.host, 'x-probe': 'e2e-probe' } })
  assert.equal(res.statusCode, 200)
  await res.body.text()

  await until(/GET\s+\/hello\s+200/)
  tmux('send-keys', '-t', 'gw', 'Enter')
  await until(/GET \/hello\?from=tmux HTTP\/1\.1/)
  await until(/x-probe: e2e-probe/i)
  assert.match(screen(), /"hello": "from upstream"/)

  tmux('send-keys', '-t', 'gw', 'r')
  await waitFor(() => hits.length === 2, 10_000, 'the upstream to be hit again')
  assert.deepEqual(hits[1], { url: '/hello?from=tmux', probe: 'e2e-probe' })
  await until(/replayed GET \/hello/)
  tmux('send-keys', '-t', 'gw', 'Escape')
  await until(/replay/)

  if (process.env.GW_SCREENSHOT_DIR) await screenshot(pool, publicUrl.host, screen, () => tmux('capture-pane', '-p', '-e', '-t', 'gw'))

  tmux('send-keys', '-t', 'gw', 'q')
  await waitFor(() => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim() !== '', 15_000, 'gw to exit')
    .catch((err: Error) => {
      throw new Error(`${err.message}; screen:\n${screen()}`)
    })
  assert.equal(readFileSync(exitFile, 'utf8').trim(), '0', 'gw exits 0 on q')
  assert.equal(tmux('display-message', '-p', '-t', 'gw', '#{alternate_on}').trim(), '0', 'the alternate screen is left')
  // A dead pane always reports its cursor hidden, so read the bytes: the last cursor
  // change shows it, the last alternate-screen change leaves it. tmux copies the pane's
  // output to the file on its own time, so the last bytes may land after the exit file
  // (under load they had not): read it until both hold, or for 5 s, then judge.
  let bytes = ''
  const restored = (): boolean => bytes.lastIndexOf('\x1b[?25h') > bytes.lastIndexOf('\x1b[?25l') && bytes.lastIndexOf('\x1b[?1049l') > bytes.lastIndexOf('\x1b[?1049h')
  await waitFor(() => {
    bytes = readFileSync(output, 'latin1')
    return restored()
  }, 5_000, 'the pane output to be written').catch(() => {})
  assert.ok(bytes.lastIndexOf('\x1b[?25h') > bytes.lastIndexOf('\x1b[?25l'), 'the cursor is shown again')
  assert.ok(bytes.lastIndexOf('\x1b[?1049l') > bytes.lastIndexOf('\x1b[?1049h'), 'the alternate screen is left last')
})

/** For the docs: a few more requests, then the terminal as it looks, rendered to PNG. */
async function screenshot(pool: Pool, host: string, screen: () => string, colourScreen: () => string): Promise<void> {
  const send = async (method: string, path: string, body?: string) => {
    const res = await pool.request({ path, method, headers: { host, 'content-type': 'application/json' }, ...(body ? { body } : {}) })
    await res.body.text()
  }
  await send('POST', '/hooks/stripe', '{"type":"invoice.paid","amount":4200}')
  await send('GET', '/api/users?page=2')
  await send('DELETE', '/api/users/7')
  await waitFor(() => /DELETE\s+\/api\/users\/7/.test(screen()), 10_000, 'the new rows')
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'], headless: true })
  try {
    const page = await browser.newPage({ deviceScaleFactor: 2 })
    await page.setContent(ansiToHtml(colourScreen(), { title: 'gw http 3000' }))
    await page.locator('#screen').screenshot({ path: join(process.env.GW_SCREENSHOT_DIR!, 'tui.png') })
  } finally {
    await browser.close()
  }
}

test('SIGTERM to gw in tmux leaves the terminal restored', { skip: !hasTmux() && 'no tmux', timeout: 60_000 }, async (t) => {
  const { dir, tmux } = terminal(t, `gw-test-term-${process.pid}`)
  const upstream = await startUpstream((_req, res) => res.end('ok'))
  t.after(() => upstream.close())
  const output = join(dir, 'pane-output')
  const command = ['exec', process.execPath, GW_BIN, 'http', String(upstream.port), '--inspect-addr', '127.0.0.1:0'].map((a, i) => (i === 0 ? a : `'${a}'`)).join(' ')
  tmux(
    'new-session', '-d', '-s', 'gw', '-x', '80', '-y', '24', '-e', `GW_CONFIG=${join(dir, 'gw.yml')}`, command,
    ';', 'set-option', '-t', 'gw', 'remain-on-exit', 'on',
    ';', 'pipe-pane', '-t', 'gw', '-o', `cat >> '${output}'`,
  )
  const screen = (): string => tmux('capture-pane', '-p', '-t', 'gw')
  await waitFor(() => /Forwarding\s+https?:\/\//.test(screen()), 15_000, `the TUI; screen:\n${screen()}`)
  // It fits 80×24: nothing scrolled off, the key line is the last one drawn.
  assert.match(screen(), /^gw /)
  assert.match(screen(), /q quit/)
  const pid = Number(tmux('display-message', '-p', '-t', 'gw', '#{pane_pid}').trim())
  process.kill(pid, 'SIGTERM')
  await waitFor(() => tmux('display-message', '-p', '-t', 'gw', '#{pane_dead}').trim() === '1', 15_000, 'gw to exit')
  assert.equal(tmux('display-message', '-p', '-t', 'gw', '#{alternate_on}').trim(), '0', 'the alternate screen is left')
  const bytes = readFileSync(output, 'latin1')
  assert.ok(bytes.lastIndexOf('\x1b[?25h') > bytes.lastIndexOf('\x1b[?25l'), 'the cursor is shown again')
  assert.ok(bytes.lastIndexOf('\x1b[?1049l') > bytes.lastIndexOf('\x1b[?1049h'), 'the alternate screen is left last')
})
