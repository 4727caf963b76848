/**
 * The shapes of ngrok's endpoint URL and config files that gw reads or refuses, through
 * the same functions `gw http --url` and `gw start` call (the CLI side is in
 * ngrok-flags.test).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkBinding, parseEndpointUrl } from '@gw/cli/config/endpoint-url'
import { loadConfig } from '@gw/cli/config/config-file'
import { CliError } from '@gw/cli/errors'
import { tempDir } from '../helpers/stack.js'

function refusal(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof CliError)
    return `${err.code}: ${err.message}`
  }
  assert.fail('expected a refusal')
}

describe('parseEndpointUrl', () => {
  for (const [input, expected] of [
    ['myapp', { publicName: 'myapp' }],
    ['MyApp.Tunnel.Example.com', { publicName: 'myapp', publicHost: 'myapp.tunnel.example.com' }],
    ['https://api.tunnel.example.com', { publicName: 'api', publicHost: 'api.tunnel.example.com' }],
    ['http://api.tunnel.example.com/', { publicName: 'api', publicHost: 'api.tunnel.example.com' }],
    ['https://api.internal', { publicName: '', internalHost: 'api.internal' }],
    ['https://telemetry.api.internal:443', { publicName: '', internalHost: 'telemetry.api.internal' }],
    ['http://api.internal:8080', { publicName: '', internalHost: 'api.internal:8080' }],
  ] as const) {
    it(`reads ${input}`, () => assert.deepEqual(parseEndpointUrl(input, '--url'), expected))
  }
  for (const [input, why] of [
    ['tcp://0.tcp.localhost:5432', /a tcp:\/\/ endpoint is served by gw tcp/],
    ['tls://app.localhost', /a tls:\/\/ endpoint is served by gw tls/],
    ['ftp://app.localhost', /the scheme must be http or https, got ftp/],
    ['https://app.localhost:8443', /the relay chooses the port/],
    ['https://app.localhost/api', /an endpoint URL has no path/],
    ['*.localhost', /wildcard endpoints are not supported/],
    ['https://api.internal/v1', /an endpoint URL has no path/],
    ['', /give a name/],
  ] as const) {
    it(`refuses ${JSON.stringify(input)} with the reason`, () => {
      const message = refusal(() => parseEndpointUrl(input, '--url'))
      assert.match(message, /^GW_ERR_INVALID_FLAG: --url /)
      assert.match(message, why)
    })
  }
  it('takes the public binding, internal in a config file, and refuses the others', () => {
    checkBinding('public', '--binding')
    checkBinding('internal', 'gw.yml: endpoint "api": bindings', true)
    assert.match(refusal(() => checkBinding('kubernetes', '--binding')), /gw has no Kubernetes operator/)
    assert.match(refusal(() => checkBinding('internal', '--binding')), /"internal": gw serves internal endpoints over http only: gw http <port> --url https:\/\/<name>\.internal/)
  })
})

describe('loadConfig with ngrok v2 files and tunnels:', () => {
  function load(text: string) {
    const dir = tempDir('gw-v2-unit-')
    const file = join(dir, 'gw.yml')
    writeFileSync(file, text)
    try {
      return loadConfig(file)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  it('folds the v2 agent keys and the common http tunnel fields into v3 endpoints and policy rules', () => {
    const config = load(`version: "2"
authtoken: tok
server_addr: https://relay.example.com
web_addr: 127.0.0.1:4141
region: eu
tunnels:
  web:
    proto: http
    addr: 8080
    hostname: web.relay.example.com
    host_header: rewrite
    inspect: false
    auth: "a:b"
    ip_restriction: {allow_cidrs: [10.0.0.0/8], deny_cidrs: [10.1.0.0/16]}
    request_header: {add: ["X-A: 1"], remove: [x-b]}
    response_header: {add: ["X-C: 2"]}
    compression: true
    circuit_breaker: 0.5
    webhook_verification: {provider: github, secret: s}
    schemes: [https]
`)
    assert.deepEqual(config.agent, { authtoken: 'tok', connect_url: 'https://relay.example.com', web_addr: '127.0.0.1:4141' })
    assert.deepEqual(config.endpoints, [{
      name: 'web',
      upstream: { url: 8080 },
      url: 'web.relay.example.com',
      host_header: 'rewrite',
      inspect: false,
      traffic_policy: {
        on_http_request: [
          { actions: [{ type: 'basic-auth', config: { credentials: ['a:b'] } }] },
          { actions: [{ type: 'restrict-ips', config: { allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'] } }] },
          { actions: [{ type: 'verify-webhook', config: { provider: 'github', secret: 's' } }] },
          { actions: [{ type: 'remove-headers', config: { headers: ['x-b'] } }] },
          { actions: [{ type: 'add-headers', config: { headers: { 'X-A': '1' } } }] },
        ],
        on_http_response: [
          { actions: [{ type: 'add-headers', config: { headers: { 'X-C': '2' } } }] },
          { actions: [{ type: 'circuit-breaker', config: { error_threshold: 0.5 } }] },
          { actions: [{ type: 'compress-response' }] },
        ],
      },
    }])
  })

  it('reads tunnels: beside endpoints: in a v3 file', () => {
    const config = load('version: 3\nendpoints:\n  - {name: a, upstream: {url: 1}}\ntunnels:\n  b: {proto: http, addr: 2}\n')
    assert.deepEqual(config.endpoints?.map((e) => e.name), ['a', 'b'])
  })

  for (const [name, text, why] of [
    ['a tcp tunnel', 'version: "2"\ntunnels:\n  ssh: {proto: tcp, addr: 22}\n', /tunnels\.ssh: proto tcp is not supported: gw serves http tunnels only/],
    ['a tunnel field gw lacks', 'version: "2"\ntunnels:\n  web: {proto: http, addr: 80, oauth: {provider: google}}\n', /tunnels\.web: gw does not support oauth in a tunnel/],
    ['a tunnel without addr', 'version: "2"\ntunnels:\n  web: {proto: http}\n', /tunnels\.web: needs addr/],
    ['a v2 key gw lacks', 'version: "2"\nserver_tls: true\n', /gw does not support the v2 key server_tls/],
    ['a name both a tunnel and an endpoint', 'version: 3\nendpoints:\n  - {name: a, upstream: {url: 1}}\ntunnels:\n  a: {addr: 2}\n', /"a" is both a tunnel and an endpoint/],
    ['an unknown version', 'version: 4\n', /version 4 is not one gw reads/],
  ] as const) {
    it(`refuses ${name}`, () => {
      const message = refusal(() => load(text))
      assert.match(message, /^GW_ERR_CONFIG: /)
      assert.match(message, why)
    })
  }
})
