/**
 * The relay's Prometheus metrics, read back by a Prometheus text parser this project did
 * not write (parse-prometheus-text-format), after real traffic through a real relay and
 * agent: every count, byte and label is checked against what the test sent.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request } from 'undici'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { rmSync } from 'node:fs'
import { startRelay } from '@gw/relay'
import { startAgent } from '@gw/cli/agent/agent'
import { startStack, tempDir, waitFor } from '../helpers/stack.js'
import { rawExchange } from '../helpers/raw-client.js'

interface Sample { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }
interface Family { name: string; help: string; type: string; metrics: Sample[] }

async function scrape(url: string): Promise<{ text: string; families: Map<string, Family> }> {
  const res = await request(url)
  assert.equal(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  const text = await res.body.text()
  const families = new Map<string, Family>()
  for (const f of parsePrometheusTextFormat(text) as Family[]) families.set(f.name, f)
  return { text, families }
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name)
  assert.ok(family, `${name} is exported`)
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  return sample ? Number(sample.value) : 0
}

describe('relay metrics (--metrics-addr)', () => {
  it('counts agents, streams, requests by class, bytes, latency, handshake failures and tokens', { timeout: 60_000 }, async (t) => {
    let release: (() => void) | undefined
    const stack = await startStack((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        if (req.url === '/hold') {
          release = () => res.end('held')
          return
        }
        const status = req.url === '/missing' ? 404 : req.url === '/boom' ? 500 : req.url === '/moved' ? 302 : req.method === 'POST' ? 201 : 200
        res.writeHead(status, { 'content-type': 'text/plain' })
        res.end(req.method === 'POST' ? `got ${Buffer.concat(chunks).length}` : 'hello')
      })
    }, { relay: { metricsAddr: '127.0.0.1:0', authtokens: ['token-alpha', 'token-beta'] }, agent: { authtoken: 'token-alpha' } })
    t.after(() => stack.close())
    const metricsUrl = stack.relay.metricsUrl!
    assert.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const port = stack.relay.httpPort!
    const alpha = createHash('sha256').update('token-alpha').digest('hex').slice(0, 8)

    // A refused handshake, counted by its code.
    await assert.rejects(startAgent({ relay: stack.relay.httpUrl!, authtoken: 'wrong', endpoints: [{ upstream: stack.upstream.url }] }))

    // Raw requests, so the bytes each way are known exactly.
    let sentBytes = 0
    let receivedBytes = 0
    const send = async (raw: string): Promise<string> => {
      const result = await rawExchange(port, raw, 5000)
      sentBytes += Buffer.byteLength(raw)
      receivedBytes += result.text.length
      return result.text
    }
    const get = (path: string, host = stack.host) => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`
    const body = 'x'.repeat(300)
    for (let i = 0; i < 3; i++) assert.match(await send(get('/ok')), /^HTTP\/1\.1 200 /)
    assert.match(await send(`POST /upload HTTP/1.1\r\nHost: ${stack.host}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`), /^HTTP\/1\.1 201 [^]*got 300/)
    assert.match(await send(get('/moved')), /^HTTP\/1\.1 302 /)
    assert.match(await send(get('/missing')), /^HTTP\/1\.1 404 /)
    assert.match(await send(get('/boom')), /^HTTP\/1\.1 500 /)
    // Two requests on one kept-alive connection.
    const twice = await send(`GET /ok HTTP/1.1\r\nHost: ${stack.host}\r\n\r\n${get('/ok')}`)
    assert.equal(twice.match(/HTTP\/1\.1 200 /g)?.length, 2)
    // Every byte so far went through alpha's tunnel.
    const alphaBytes = { in: sentBytes, out: receivedBytes }
    // A name nobody holds: the relay's own 404 with a code, and no token.
    assert.match(await send(get('/', 'nobody.localhost')), /^HTTP\/1\.1 404 [^]*gw-error-code: GW_ERR_TUNNEL_NOT_FOUND/i)
    const tunnelled = 3 + 1 + 1 + 1 + 1 + 2

    let families = (await scrape(metricsUrl)).families
    await waitFor(async () => {
      families = (await scrape(metricsUrl)).families
      const h = families.get('gw_relay_request_duration_seconds')!.metrics[0]!
      return Number(h.count) === tunnelled + 1
    }, 10_000, 'every request counted')

    assert.equal(value(families, 'gw_relay_agents'), 1)
    assert.equal(value(families, 'gw_relay_token_agents', { token: alpha }), 1)
    assert.equal(value(families, 'gw_relay_agent_connections_total'), 1)
    assert.equal(value(families, 'gw_relay_streams_open'), 0)
    assert.equal(value(families, 'gw_relay_requests_total', { class: '2xx' }), 3 + 1 + 2)
    assert.equal(value(families, 'gw_relay_requests_total', { class: '3xx' }), 1)
    assert.equal(value(families, 'gw_relay_requests_total', { class: '4xx' }), 2)
    assert.equal(value(families, 'gw_relay_requests_total', { class: '5xx' }), 1)
    assert.equal(value(families, 'gw_relay_bytes_total', { direction: 'in' }), sentBytes)
    assert.equal(value(families, 'gw_relay_bytes_total', { direction: 'out' }), receivedBytes)
    assert.equal(value(families, 'gw_relay_error_responses_total', { code: 'GW_ERR_TUNNEL_NOT_FOUND' }), 1)
    assert.equal(value(families, 'gw_relay_handshake_failures_total', { code: 'GW_ERR_AUTH_INVALID' }), 1)
    assert.equal(value(families, 'gw_relay_token_requests_total', { token: alpha }), tunnelled)
    assert.equal(value(families, 'gw_relay_token_bytes_total', { token: alpha, direction: 'in' }), alphaBytes.in)
    assert.equal(value(families, 'gw_relay_token_bytes_total', { token: alpha, direction: 'out' }), alphaBytes.out)
    const beta = createHash('sha256').update('token-beta').digest('hex').slice(0, 8)
    assert.ok(!families.get('gw_relay_token_requests_total')!.metrics.some((m) => m.labels?.token === beta), 'no samples for a token that sent nothing')
    const histogram = families.get('gw_relay_request_duration_seconds')!
    assert.equal(histogram.type, 'HISTOGRAM')
    const h = histogram.metrics[0]!
    assert.equal(Number(h.buckets!['+Inf']), tunnelled + 1)
    assert.ok(Number(h.sum) > 0)
    // Buckets are cumulative.
    const counts = Object.entries(h.buckets!).sort(([a], [b]) => Number(a) - Number(b)).map(([, c]) => Number(c))
    assert.deepEqual(counts, [...counts].sort((a, b) => a - b))
    assert.ok(families.has('gw_relay_acme_events_total'), 'the ACME hook is exported')

    // A request in flight is an open stream.
    const held = request(`${stack.httpOrigin}/hold`, { headers: { host: stack.host } })
    await waitFor(() => release !== undefined, 10_000, 'the upstream holds the request')
    families = (await scrape(metricsUrl)).families
    assert.equal(value(families, 'gw_relay_streams_open'), 1)
    release!()
    assert.equal(await (await held).body.text(), 'held')

    // The ACME hook: events emitted on relay.events are counted.
    stack.relay.events.emit('acme', { event: 'order', result: 'ok' })
    stack.relay.events.emit('acme', { event: 'order', result: 'error' })
    stack.relay.events.emit('acme', { event: 'order', result: 'ok' })
    const { text, families: after } = await scrape(metricsUrl)
    assert.equal(value(after, 'gw_relay_acme_events_total', { event: 'order', result: 'ok' }), 2)
    assert.equal(value(after, 'gw_relay_acme_events_total', { event: 'order', result: 'error' }), 1)

    // No high-cardinality labels: no tunnel name, path, address or token in any label.
    assert.ok(!text.includes(stack.name), 'no tunnel name')
    assert.ok(!text.includes('/missing') && !text.includes('/upload'), 'no path')
    assert.ok(!text.includes('token-alpha') && !text.includes('127.0.0.1'), 'no token, no address')

    // The agent leaves: the gauges follow.
    await stack.agent.close()
    await waitFor(async () => value((await scrape(metricsUrl)).families, 'gw_relay_agents') === 0, 10_000, 'agent gauge back to 0')
  })

  it('refuses a --metrics-addr that is not host:port, naming the fix', async () => {
    const dir = tempDir()
    await assert.rejects(
      startRelay({ host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir: dir, metricsAddr: 'localhost' }),
      /--metrics-addr "localhost" is not host:port; give e\.g\. 127\.0\.0\.1:9464/,
    )
    rmSync(dir, { recursive: true, force: true })
  })
})
