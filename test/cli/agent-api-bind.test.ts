/**
 * The agent API shows captured requests and replays them: bound off loopback, gw http
 * says so; on loopback it stays quiet.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { spawnGw, startUpstream, tempDir } from '../helpers/stack.js'

async function startupLines(inspectAddr: string): Promise<string[]> {
  const dir = tempDir()
  const upstream = await startUpstream((_req, res) => res.end('ok'))
  const gw = spawnGw(['http', String(upstream.port), '--no-tui', '--log-format', 'json', '--inspect-addr', inspectAddr], { GW_CONFIG: join(dir, 'gw.yml') })
  try {
    await gw.waitForLine((l) => l.includes('"agent API"'), 120_000)
    return [...gw.lines, ...gw.stderr().split('\n')]
  } finally {
    gw.kill()
    await gw.exited
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('the agent API address', () => {
  it('warns when the agent API is bound off loopback, and not when it is on loopback', async () => {
    const off = await startupLines('0.0.0.0:0')
    assert.ok(off.some((l) => l.includes('off loopback') && l.includes('0.0.0.0')), `no warning in:\n${off.join('\n')}`)
    const on = await startupLines('127.0.0.1:0')
    assert.ok(!on.some((l) => l.includes('off loopback')))
  })
})
