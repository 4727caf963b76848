/**
 * The web inspector in a real browser (Debian's Chromium driven by playwright-core),
 * against the real `gw http` binary, its embedded relay and a real upstream: a request
 * through the tunnel shows up live, its detail shows headers and the pretty-printed
 * body, Replay makes the upstream see it twice, and a replay with modifications sends
 * the edited method, path, headers and body.
 */
import assert from 'node:assert/strict'
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { chromium } from 'playwright-core'
import { Pool } from 'undici'
import { spawnGw, startUpstream, tempDir, waitFor } from '../helpers/stack.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

const SENT = '{"event":"paid","amount":4200}'

interface Hit {
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

test('live list, detail, replay and replay with modifications in Chromium', { skip: !existsSync(CHROMIUM) && 'no /usr/bin/chromium', timeout: 90_000 }, async (t) => {
  const dir = tempDir('gw-web-')
  // Undone last first: the browser and gw must be gone before their directory is.
  const cleanups: (() => unknown)[] = [() => rmSync(dir, { recursive: true, force: true })]
  t.after(async () => {
    for (const undo of cleanups.reverse()) await undo()
  })
  const hits: Hit[] = []
  const upstream = await startUpstream((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      hits.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() })
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ received: true, n: hits.length }))
    })
  })
  cleanups.push(() => upstream.close())

  const gw = spawnGw(['http', String(upstream.port), '--log-format', 'json', '--inspect-addr', '127.0.0.1:0', '--no-tui'], { GW_CONFIG: join(dir, 'gw.yml') })
  cleanups.push(async () => {
    gw.kill()
    await gw.exited
  })
  const started = JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"') && l.includes('"http://'))) as { url: string }
  const apiLine = JSON.parse(await gw.waitForLine((l) => l.includes('"agent API"'))) as { url: string }
  const publicUrl = new URL(started.url)
  const tunnel = new Pool(`http://127.0.0.1:${publicUrl.port}`)
  cleanups.push(() => tunnel.close())

  const context = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), { executablePath: CHROMIUM, args: ARGS, headless: true })
  cleanups.push(() => context.close())
  const page = context.pages()[0] ?? (await context.newPage())
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(String(err)))
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text())
  })
  await page.goto(`${apiLine.url}/inspect/http`)
  await page.waitForSelector('#status.online')
  assert.match(await page.textContent('#tunnels') ?? '', new RegExp(`${publicUrl.host.replace(/\./g, '\\.')} → http://localhost:${upstream.port}`))

  // A webhook arrives through the tunnel and shows up without a reload.
  const res = await tunnel.request({
    path: '/webhook?source=stripe',
    method: 'POST',
    headers: { host: publicUrl.host, 'content-type': 'application/json', 'x-signature': 't=1,v1=abc' },
    body: SENT,
  })
  assert.equal(res.statusCode, 200)
  await res.body.text()
  // The row appears when the request starts and gets its status when the response comes
  // (two events on the stream): wait for the finished row, not just any row.
  const row = page.locator('#list tbody tr', { hasText: /POST.*\/webhook.*200/ })
  await row.waitFor({ timeout: 10_000 })
  assert.match(await row.textContent() ?? '', /POST.*\/webhook.*200/)

  // The detail: request line, headers, pretty JSON, response.
  await row.click()
  await page.waitForSelector('#request-line:has-text("POST /webhook?source=stripe HTTP/1.1")')
  assert.match(await page.textContent('#request-headers') ?? '', /x-signature\s*t=1,v1=abc/i)
  assert.equal(await page.textContent('#request-body'), JSON.stringify({ event: 'paid', amount: 4200 }, null, 2))
  assert.match(await page.textContent('#request-body-info') ?? '', /json/)
  assert.match(await page.textContent('#response-line') ?? '', /^HTTP\/1\.1 200/)
  assert.match(await page.textContent('#response-body') ?? '', /"received": true/)
  assert.match(await page.textContent('#timing') ?? '', /relay → agent .* total/)

  // Replay: the upstream sees the same request a second time, and a replay row appears.
  await page.click('#replay')
  await waitFor(() => hits.length === 2, 10_000, 'the upstream to be hit twice')
  assert.equal(hits[1]!.method, 'POST')
  assert.equal(hits[1]!.url, '/webhook?source=stripe')
  assert.equal(hits[1]!.body, SENT)
  assert.equal(hits[1]!.headers['x-signature'], 't=1,v1=abc')
  await page.locator('#list tbody tr', { hasText: 'replay' }).waitFor()
  assert.match(await page.textContent('#flash') ?? '', /Replayed POST/)

  // Replay with modifications: method, path, a header and the body.
  await page.click('#replay-edit')
  await page.fill('#mod-method', 'PUT')
  await page.fill('#mod-path', '/webhook?source=edited')
  const headers = await page.inputValue('#mod-headers')
  await page.fill('#mod-headers', headers + '\nX-Edited: yes')
  await page.fill('#mod-body', '{"event":"refunded"}')
  await page.click('#mod-send')
  await waitFor(() => hits.length === 3, 10_000, 'the modified replay')
  assert.equal(hits[2]!.method, 'PUT')
  assert.equal(hits[2]!.url, '/webhook?source=edited')
  assert.equal(hits[2]!.headers['x-edited'], 'yes')
  assert.equal(hits[2]!.body, '{"event":"refunded"}')
  assert.equal(hits[2]!.headers['content-length'], String('{"event":"refunded"}'.length))
  await page.locator('#list tbody tr', { hasText: '/webhook' }).nth(2).waitFor()

  if (process.env.GW_SCREENSHOT_DIR) {
    await page.locator('#list tbody tr', { hasText: '/webhook' }).last().click()
    await page.waitForSelector('#request-line:has-text("POST /webhook")')
    await page.screenshot({ path: join(process.env.GW_SCREENSHOT_DIR, 'web-inspector.png') })
  }

  // The filter, then Clear.
  await page.fill('#filter', 'put')
  await waitFor(async () => (await page.locator('#list tbody tr').count()) === 1, 5000, 'the filter')
  await page.fill('#filter', '')
  await page.click('#clear')
  await waitFor(async () => (await page.locator('#list tbody tr').count()) === 0, 5000, 'the list to clear')
  await page.waitForSelector('#nothing:has-text("Cleared")')
  assert.equal(await page.isHidden('#detail'), true)
  assert.deepEqual(errors, [])
  // Capture taps the request body on its way to the upstream; the tap must not eat it.
  assert.equal(hits[0]!.body, SENT, 'the request through the tunnel reached the upstream without its body')
})
