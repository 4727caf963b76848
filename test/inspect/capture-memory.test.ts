/**
 * `--inspect-db-size` bounds memory, as ngrok's `inspect_db_size` does: the ring buffer's
 * real heap and buffer bytes, after a full GC, stay within what it is charged. Exchanges
 * come from the agent's own Recorder over heads parsed from JSON as the pipeline parses
 * them, so the objects kept are the ones a running agent keeps. Before the slab store and
 * the measured overhead, a 1 KiB body held up to an 8 KiB pool slab and evicted records
 * stayed reachable until the order array compacted: about 3.5× the charge.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { AgentEvents } from '@gw/cli/agent/events'
import { Recorder } from '@gw/cli/agent/recorder'
import { createCapture } from '@gw/cli/inspect/capture'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function liveBytes(): number {
  gc()
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

function serveOne(events: AgentEvents, i: number, body: Buffer): void {
  const head = JSON.parse(JSON.stringify({
    method: 'GET', target: `/items/${i}?page=2`, httpVersion: '1.1',
    rawHeaders: ['Host', 'demo.localhost', 'User-Agent', 'curl/8.5.0', 'Accept', '*/*', 'X-Forwarded-For', '127.0.0.1'],
    remoteAddress: '127.0.0.1', remotePort: 40000 + (i % 20000), scheme: 'https', receivedAt: Date.now(),
  }))
  const recorder = new Recorder(events, { id: `req_${i}_${Math.random().toString(36).slice(2, 10)}`, tunnel: 'command_line', head })
  recorder.upstreamStart()
  recorder.upstreamHead()
  const response = JSON.parse(JSON.stringify(['Content-Type', 'application/json', 'Content-Length', String(body.length), 'Date', new Date().toUTCString(), 'Connection', 'keep-alive']))
  recorder.response(200, 'OK', response)
  // A chunk from Buffer's pool, as the upstream client's chunks are.
  recorder.responseBody(Buffer.from(body))
  recorder.end()
}

for (const bodySize of [1024, 16 * 1024]) {
  test(`the ring buffer's real memory stays within --inspect-db-size (${bodySize}-byte bodies)`, () => {
    const dbSize = 8 * 1024 * 1024
    const events = new AgentEvents()
    const body = Buffer.alloc(bodySize, 0x61)
    const before = liveBytes()
    const capture = createCapture(events, { bodyLimit: 64 * 1024, dbSize, enabled: true })
    // Three times what fits, so eviction runs for two thirds of the requests.
    const perRecord = 1024 + 400 + bodySize
    const n = Math.ceil((3 * dbSize) / perRecord)
    for (let i = 0; i < n; i++) serveOne(events, i, body)
    const live = liveBytes() - before
    assert.ok(capture.size > 0 && capture.size < n, `${capture.size} records of ${n}`)
    assert.ok(capture.usedBytes <= dbSize)
    // Within the charge, plus the slab being filled (dbSize / 32) and a little slack.
    assert.ok(live <= dbSize * 1.1, `${capture.size} records hold ${(live / 2 ** 20).toFixed(1)} MiB for a ${dbSize / 2 ** 20} MiB ring`)
    // And the charge is not so high that the ring keeps far fewer records than it could.
    assert.ok(live >= dbSize * 0.5, `${capture.size} records hold only ${(live / 2 ** 20).toFixed(1)} MiB for a ${dbSize / 2 ** 20} MiB ring`)
    capture.clear()
    assert.ok(liveBytes() - before < dbSize * 0.2, 'clear() lets go of the records and their slabs')
    capture.close()
  })
}
