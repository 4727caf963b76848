/**
 * The `actions.ngrok.<action>.*` result variables ngrok documents for each action
 * (snippets/traffic-policy/actions/<action>/variables.mdx), read by a later rule through
 * the real relay, agent and upstream.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compilePolicy } from '@gw/cli/policy/index'
import { startEchoUpstream, startPolicyTunnel } from './tunnel-stack.js'

test('url_rewrite, redirect, add_headers, remove_headers, log, verify_webhook and compress results, as ngrok names them', async () => {
  const upstream = await startEchoUpstream()
  const tunnel = await startPolicyTunnel(compilePolicy({
    on_http_request: [
      { expressions: ["req.url.path.startsWith('/old/')"], actions: [{ type: 'redirect', config: { from: '/old/([a-z]+)', to: '/new/$1', status_code: 301 } }] },
      { actions: [
        { type: 'url-rewrite', config: { from: '/v1/users/([0-9]+)', to: '/users?id=$1' } },
        { type: 'remove-headers', config: { headers: ['x-drop', 'x-absent'] } },
        { type: 'add-headers', config: { headers: { 'X-Added': 'yes' } } },
        { type: 'log', config: { metadata: { who: '${conn.client_ip}' } } },
        { type: 'verify-webhook', config: { provider: 'github', secret: 's3cret', enforce: false } },
      ] },
      { actions: [{ type: 'add-headers', config: { headers: {
        'x-rewrite': '${actions.ngrok.url_rewrite.url} ${actions.ngrok.url_rewrite.matches}',
        'x-removed': '${actions.ngrok.remove_headers.headers_removed}',
        'x-added-result': '${actions.ngrok.add_headers.headers_added}',
        'x-log': '${actions.ngrok.log.metadata.who}',
        'x-webhook': '${actions.ngrok.verify_webhook.verified} ${actions.ngrok.verify_webhook.error.code}',
      } } }] },
    ],
    on_http_response: [
      { actions: [{ type: 'compress-response', config: { algorithms: ['gzip'] } }] },
      { actions: [{ type: 'add-headers', config: { headers: { 'x-compress': '${actions.ngrok.compress.negotiated_algorithm} ${actions.ngrok.compress.already_compressed}' } } }] },
    ],
  }), upstream.url)
  try {
    const res = await tunnel.fetch('/v1/users/42', { headers: { 'x-drop': '1' } })
    const seen = (JSON.parse(res.text) as { headers: Record<string, string>; url: string })
    assert.equal(seen.url, '/users?id=42')
    assert.match(seen.headers['x-rewrite']!, /^http:\/\/[^/]+\/users\?id=42 \["\/v1\/users\/42","42"\]$/)
    assert.equal(seen.headers['x-removed'], '["x-drop"]')
    assert.equal(seen.headers['x-added-result'], '{"x-added":"yes"}')
    assert.equal(seen.headers['x-log'], '127.0.0.1')
    assert.equal(seen.headers['x-webhook'], 'false invalid_signature', 'enforce: false lets it through with the error recorded')
    assert.equal(res.headers['x-compress'], 'false', 'no Accept-Encoding: nothing negotiated (an empty algorithm)')
    const gz = await tunnel.fetch('/x', { headers: { 'accept-encoding': 'gzip' } })
    assert.equal(gz.headers['x-compress'], 'gzip false')
    const moved = await tunnel.fetch('/old/page')
    assert.equal(moved.status, 301)
    assert.match(String(moved.headers['location']), /\/new\/page$/)
  } finally {
    await tunnel.close()
    await upstream.close()
  }
})
