/**
 * `sse-find-replace` in the `on_event_stream_message` phase, from ngrok's docs examples,
 * through the real relay, agent and an upstream that streams server-sent events: each
 * message is rewritten as it arrives (the upstream sends the next one only after the
 * client has the first), across any chunking, and a message no rule touches is passed
 * on byte for byte.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { compilePolicy } from '@gw/cli/policy/index'
import { createSseTransform, SseMessage } from '@gw/cli/policy/sse'
import { startPolicyTunnel } from './tunnel-stack.js'
import { fixture } from './ngrok-docs.js'

const docs = (id: string) => JSON.parse(JSON.stringify(fixture(id).policy)) as unknown

async function sseUpstream(onRequest: (res: ServerResponse) => void) {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
    res.flushHeaders()
    onRequest(res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

test('sse-find-replace (ngrok\'s redaction example): each message is redacted as it streams through the real tunnel', async () => {
  let upstreamRes: ServerResponse | undefined
  const upstream = await sseUpstream((res) => {
    upstreamRes = res
    // The first message, split mid-field and with CRLF line ends; a comment and an id untouched.
    res.write(': keep-alive\r\nid: 1\r\ndata: {"ssn": "123-4')
    setImmediate(() => res.write('5-6789"}\r\n\r\n'))
  })
  const tunnel = await startPolicyTunnel(compilePolicy(docs('traffic-policy-actions-sse-find-replace-991ca3')), upstream.url)
  try {
    const res = await request(`${tunnel.origin}/v1/chat`, { headers: { host: tunnel.host, accept: 'text/event-stream' } })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
    const it = res.body[Symbol.asyncIterator]()
    let got = ''
    while (!got.includes('\n\n')) got += Buffer.from((await it.next()).value as Buffer).toString()
    assert.equal(got, ': keep-alive\nid: 1\ndata: {"ssn": "[SSN REDACTED]"}\n\n')
    // Only now does the upstream send more: the first message was not held back for the rest.
    upstreamRes!.write('data: mail bob@example.com\ndata: line two\n\n')
    upstreamRes!.write('event: done\ndata: nothing to see\n\n')
    upstreamRes!.end()
    let rest = ''
    for (let r = await it.next(); !r.done; r = await it.next()) rest += Buffer.from(r.value as Buffer).toString()
    assert.equal(rest, 'data: mail [EMAIL REDACTED]\ndata: line two\n\nevent: done\ndata: nothing to see\n\n')
  } finally {
    await tunnel.close()
    await upstream.close()
  }
})

test('sse-find-replace: the retry field (ngrok\'s example), and a response that is not an event stream is left alone', async () => {
  const upstream = await sseUpstream((res) => res.end('retry: 100\ndata: x\n\n'))
  const tunnel = await startPolicyTunnel(compilePolicy(docs('traffic-policy-actions-sse-find-replace-3b346b')), upstream.url)
  try {
    assert.equal((await tunnel.fetch('/')).text, 'retry: 5000\ndata: x\n\n')
  } finally {
    await tunnel.close()
    await upstream.close()
  }
  const plain = createServer((_req, res) => res.end('retry: 100'))
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r))
  const t2 = await startPolicyTunnel(compilePolicy(docs('traffic-policy-actions-sse-find-replace-3b346b')), `http://127.0.0.1:${(plain.address() as AddressInfo).port}`)
  try {
    assert.equal((await t2.fetch('/')).text, 'retry: 100')
  } finally {
    await t2.close()
    plain.closeAllConnections()
    await new Promise<void>((r) => plain.close(() => r()))
  }
})

test('the SSE cutter: every split of a stream into two chunks gives the same messages', async () => {
  const stream = 'data: a IMPORTANT b\r\n\r\n: c\rdata: NOTE\r\rid: 7\ndata: plain\n\ndata: WARNING\n\n'
  const run = async (chunks: string[]) => {
    const seen: string[] = []
    const t = createSseTransform((m: SseMessage) => {
      seen.push(JSON.stringify(m.lines))
      const d = m.get('data')
      if (d?.includes('NOTE') || d?.includes('IMPORTANT') || d?.includes('WARNING')) m.set('data', d.replace(/\b(IMPORTANT|WARNING|NOTE)\b/g, '**$1**'))
    }, 1024)
    const out: string[] = []
    t.on('data', (c: Buffer) => out.push(c.toString()))
    const done = new Promise((r) => t.on('end', r))
    for (const c of chunks) t.write(Buffer.from(c))
    t.end()
    await done
    return { seen, out: out.join('') }
  }
  const whole = await run([stream])
  assert.equal(whole.seen.length, 4)
  assert.equal(whole.out, 'data: a **IMPORTANT** b\n\n: c\ndata: **NOTE**\n\nid: 7\ndata: plain\n\ndata: **WARNING**\n\n')
  for (let i = 1; i < stream.length; i++) assert.deepEqual(await run([stream.slice(0, i), stream.slice(i)]), whole, `split at ${i}`)
  // A message with no blank line past the limit fails the stream, never passes unread.
  const big = createSseTransform(() => {}, 10)
  const failed = new Promise<Error>((r) => big.on('error', r))
  big.write('data: 0123456789abcdef')
  assert.match((await failed).message, /exceeds 10 characters/)
})

test('sse-find-replace config is checked at load', () => {
  const err = (doc: unknown) => {
    try {
      compilePolicy(doc)
      return ''
    } catch (e) {
      return (e as Error).message
    }
  }
  const rule = (config: unknown) => ({ on_event_stream_message: [{ actions: [{ type: 'sse-find-replace', config }] }] })
  assert.match(err(rule({ replacements: [{ field: 'event', from: 'a' }] })), /replacements\[0\]\.field: is not a field sse-find-replace can change: "event"; allowed values: data, retry/)
  assert.match(err(rule({ replacements: [{ field: 'data', from: '(' }] })), /replacements\[0\]\.from: is not a valid regular expression/)
  assert.match(err({ on_http_response: [{ actions: [{ type: 'sse-find-replace', config: { replacements: [{ from: 'a' }] } }] }] }), /sse-find-replace cannot run in on_http_response; allowed values: on_event_stream_message/)
  assert.match(err({ on_event_stream_message: [{ actions: [{ type: 'deny' }] }] }), /deny cannot run in on_event_stream_message/)
})
