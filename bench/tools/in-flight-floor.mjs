#!/usr/bin/env node
// What Node's own HTTP stacks cost at scenario 4's load, without gw: the floor under the
// relay (a node:http server) and the agent (an undici client) with 10,000 requests in
// flight. Each runs in a fresh process; peak RSS is VmHWM, as scenario 4 reads it.
//   node bench/tools/in-flight-floor.mjs [count] [delayMs]
import { spawn } from 'node:child_process'
import { memoryOf, resetPeak, stopAll } from '../lib/children.mjs'
import { concurrent } from '../lib/http-clients.mjs'
import { startUpstream } from '../lib/paths.mjs'

const [count = '10000', delayMs = '1000'] = process.argv.slice(2)
const MiB = 1024 * 1024
const f = (b) => `${(b / MiB).toFixed(1)} MiB`

// 1. A plain node:http server (the bench upstream) holding `count` requests for delayMs.
const server = await startUpstream()
await new Promise((r) => setTimeout(r, 300))
const serverIdle = memoryOf(server.pid).rss
resetPeak(server.pid)
const served = await concurrent({ name: 'direct', protocol: 'http', port: server.port, host: `127.0.0.1:${server.port}` }, { count: Number(count), delayMs: Number(delayMs), timeoutMs: 60_000 })
const serverPeak = memoryOf(server.pid).peak

// 2. An undici Agent (as gw's agent uses) sending `count` requests at once to that server.
const clientCode = `
import { Agent, request } from 'undici'
const [url, count] = process.argv.slice(1)
const status = () => require('node:fs').readFileSync('/proc/self/status', 'utf8')
const dispatcher = new Agent()
await new Promise((r) => setTimeout(r, 300))
const idle = process.memoryUsage().rss
let ok = 0
await Promise.all(Array.from({ length: Number(count) }, () => request(url, { dispatcher }).then(async (r) => { await r.body.dump(); if (r.statusCode === 200) ok++ })))
const peak = Number(/^VmHWM:\\s+(\\d+) kB/m.exec(await import('node:fs').then((fs) => fs.readFileSync('/proc/self/status', 'utf8')))[1]) * 1024
console.log(JSON.stringify({ idle, peak, ok }))
await dispatcher.close()
`
const child = spawn(process.execPath, ['--input-type=module', '-e', clientCode, `${server.url}/delay?ms=${delayMs}`, count], { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] })
let out = ''
child.stdout.on('data', (c) => { out += c })
await new Promise((r) => child.on('exit', r))
const client = JSON.parse(out)

console.table([
  { process: 'node:http server (under the relay)', requests: `${served.ok}/${served.count}`, 'idle RSS': f(serverIdle), 'peak RSS': f(serverPeak), 'peak growth': f(serverPeak - serverIdle), 'per request': `${((serverPeak - serverIdle) / 1024 / Number(count)).toFixed(1)} KiB` },
  { process: 'undici Agent (under the agent)', requests: `${client.ok}/${count}`, 'idle RSS': f(client.idle), 'peak RSS': f(client.peak), 'peak growth': f(client.peak - client.idle), 'per request': `${((client.peak - client.idle) / 1024 / Number(count)).toFixed(1)} KiB` },
])
console.log(`floor for relay + agent: ${f(serverPeak - serverIdle + client.peak - client.idle)} of growth, on top of two idle processes`)
await stopAll()
