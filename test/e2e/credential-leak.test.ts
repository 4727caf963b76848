/**
 * No credential in any variable or log line unless the user asked for it (issue 10).
 *
 * The real `gw relay` (with its access log) and the real `gw http` (JSON log lines at
 * debug level) carry requests that hold an Authorization header (which basic-auth checks),
 * a Cookie, an API key, a proxy credential and a token in a header the policy never names.
 * The policy interpolates every variable that does not name a header or cookie, whole
 * objects included, into log actions and into headers both ways. None of the secrets may
 * show up in any log line, any access-log line, the headers the upstream receives from the
 * policy, or the response the client gets.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { spawnGw, spawnRelay, tempDir, waitFor, type SpawnedRelay } from '../helpers/stack.js'

const PASSWORD = 'pw-Zq8uXk2mN4'
const SECRETS = {
  password: PASSWORD,
  basic: Buffer.from(`alice:${PASSWORD}`).toString('base64'),
  cookie: 'ck-Hy7wQp3LsV9',
  apiKey: 'ak-Rt5nBv8cXe1',
  proxy: 'px-Jm2kLo9PqW4',
  bearer: 'tk-Uf6gHs1DzA3',
}

// Every variable that is not a header or cookie map, and the whole objects.
const VARIABLES = [
  'req.method', 'req.host', 'req.version', 'req.url', 'req.url.scheme', 'req.url.host', 'req.url.port', 'req.url.path',
  'req.url.raw_path', 'req.url.query', 'req.url.raw', 'req.url.authority', 'req.content_type', 'req.content_length',
  'req.user_agent', 'conn', 'conn.client_ip', 'conn.client_port', 'endpoint', 'endpoint.url', 'endpoint.host', 'vars', 'actions',
]
const RESPONSE_VARIABLES = [...VARIABLES, 'res.status_code']

function template(vars: string[]): string {
  return vars.map((v) => `${v}=\${${v}}`).join(' ')
}

it('no secret sent by a client reaches a log line, a policy variable or the response', async () => {
  const dir = tempDir('gw-leak-')
  const seenByUpstream: string[] = []
  const web = createServer((req, res) => {
    seenByUpstream.push(String(req.headers['x-vars'] ?? ''))
    res.setHeader('content-type', 'text/plain')
    res.end('hello')
  })
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r))
  const port = (web.address() as AddressInfo).port
  const policyFile = join(dir, 'policy.yml')
  writeFileSync(policyFile, `
on_http_request:
  - actions:
      - type: basic-auth
        config: {credentials: ["alice:${PASSWORD}"]}
      - type: log
        config: {metadata: {everything: ${JSON.stringify(template(VARIABLES))}}}
      - type: add-headers
        config: {headers: {x-vars: ${JSON.stringify(template(VARIABLES))}}}
on_http_response:
  - actions:
      - type: log
        config: {metadata: {everything: ${JSON.stringify(template(RESPONSE_VARIABLES))}}}
      - type: add-headers
        config: {headers: {x-vars-back: ${JSON.stringify(template(RESPONSE_VARIABLES))}}}
`)
  const accessLog = join(dir, 'access.log')
  let relay: SpawnedRelay | undefined
  let agent: ReturnType<typeof spawnGw> | undefined
  try {
    relay = await spawnRelay({ workers: null, stateDir: dir, args: ['--access-log', accessLog] })
    const relayUrl = relay.url
    agent = spawnGw(['http', String(port), '--relay', relayUrl, '--policy-file', policyFile, '--log-format', 'json', '--log-level', 'debug', '--no-tui', '--inspect-addr', '127.0.0.1:0'],
      { GW_CONFIG: join(dir, 'gw.yml') })
    const tunnel = JSON.parse(await agent.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
    const host = new URL(tunnel.url).host
    const headers = {
      host,
      authorization: `Basic ${SECRETS.basic}`,
      cookie: `session=${SECRETS.cookie}; theme=dark`,
      'x-api-key': SECRETS.apiKey,
      'proxy-authorization': `Bearer ${SECRETS.proxy}`,
      'x-auth-token': SECRETS.bearer,
      'user-agent': 'leak-test/1.0',
    }
    const responses: string[] = []
    for (const path of ['/', '/a/b?x=1', '/missing']) {
      const res = await request(`${relayUrl}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'text/plain' }, body: 'body' })
      responses.push(JSON.stringify(res.headers), await res.body.text())
      assert.equal(res.statusCode, 200)
    }
    // A refused one: wrong password, so the 401 path logs too.
    const refused = await request(`${relayUrl}/`, { headers: { ...headers, authorization: `Basic ${Buffer.from(`alice:x${PASSWORD}`).toString('base64')}` } })
    responses.push(JSON.stringify(refused.headers), await refused.body.text())
    assert.equal(refused.statusCode, 401)

    // The policy ran: the log action's line and the header came through with values.
    await waitFor(() => agent!.lines.filter((l) => l.includes('req.method=POST')).length >= 3, 10_000, 'the log action lines')
    assert.equal(seenByUpstream.length, 3)
    assert.match(seenByUpstream[0]!, /req\.url=http:\/\/[^ ]+\/ /)
    await waitFor(() => readFileSync(accessLog, 'utf8').trim().split('\n').length >= 4, 10_000, 'the access log lines')

    agent.kill()
    await agent.exited
    const places: Record<string, string> = {
      'agent stdout': agent.lines.join('\n'),
      'agent stderr': agent.stderr(),
      'relay stdout': relay.lines.join('\n'),
      'relay stderr': relay.stderr(),
      'relay access log': readFileSync(accessLog, 'utf8'),
      'headers the policy sent upstream': seenByUpstream.join('\n'),
      'responses': responses.join('\n'),
    }
    for (const [where, text] of Object.entries(places)) {
      for (const [what, secret] of Object.entries(SECRETS)) {
        assert.ok(!text.includes(secret), `the ${what} secret shows up in ${where}:\n${text.split('\n').find((l) => l.includes(secret))}`)
      }
    }
  } finally {
    agent?.kill()
    if (agent) await agent.exited
    await relay?.stop()
    web.closeAllConnections()
    await new Promise<void>((r) => web.close(() => r()))
    rmSync(dir, { recursive: true, force: true })
  }
})
