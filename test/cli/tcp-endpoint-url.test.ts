import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseTcpEndpointUrl, parseTlsEndpointUrl } from '@gw/cli/config/tcp-endpoint-url'
import { parseTcpUpstream } from '@gw/cli/upstream/tcp-address'
import { parseTcpPorts } from '@gw/relay'

describe('gw tcp / gw tls addresses', () => {
  it('--url tcp://HOST:PORT and --remote-addr HOST:PORT ask for the port', () => {
    for (const v of ['tcp://tunnel.example.com:20001', 'tunnel.example.com:20001', '20001', 'tcp://[::1]:20001', ':20001']) assert.equal(parseTcpEndpointUrl(v, '--url'), 20001, v)
    for (const v of ['http://a:1', 'tcp://host', 'tcp://host:0', 'tcp://host:70000', 'host', '']) assert.throws(() => parseTcpEndpointUrl(v, '--url'), { code: 'GW_ERR_INVALID_FLAG' }, v)
  })
  it('--url tls://NAME.DOMAIN asks for the name', () => {
    assert.deepEqual(parseTlsEndpointUrl('tls://app.tunnel.example.com', '--url'), { publicName: 'app', publicHost: 'app.tunnel.example.com' })
    assert.deepEqual(parseTlsEndpointUrl('app', '--url'), { publicName: 'app' })
    assert.throws(() => parseTlsEndpointUrl('https://app.example.com', '--url'), { code: 'GW_ERR_INVALID_FLAG' })
  })
  it('the upstream is a port or host:port, dialled as raw TCP', () => {
    assert.deepEqual([parseTcpUpstream('22').hostname, parseTcpUpstream('22').port, parseTcpUpstream('22').origin], ['localhost', 22, 'localhost:22'])
    assert.equal(parseTcpUpstream('tcp://db.internal:5432').origin, 'db.internal:5432')
    assert.equal(parseTcpUpstream('[::1]:2222').hostname, '::1')
    for (const v of ['0', '70000', 'http://localhost:22', 'localhost', '']) assert.throws(() => parseTcpUpstream(v), { code: 'GW_ERR_INVALID_UPSTREAM' }, v)
  })
  it('--tcp-ports: a range, one port, or any', () => {
    assert.deepEqual(parseTcpPorts('20000-20100'), { min: 20000, max: 20100 })
    assert.deepEqual(parseTcpPorts('20001'), { min: 20001, max: 20001 })
    assert.equal(parseTcpPorts('any'), 'any')
    for (const v of ['0-10', '20-10', '1-70000', 'x', '']) assert.throws(() => parseTcpPorts(v), { code: 'GW_ERR_RELAY_OPTION_INVALID' }, v)
  })
})
