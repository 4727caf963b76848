/**
 * owasp-crs-request and owasp-crs-response, from ngrok's docs examples, run by the real
 * OWASP Core Rule Set (Debian's modsecurity-crs, through libmodsecurity3) through the real
 * relay, agent and upstream; and the real `gw http` with the example curl from ngrok's
 * page. Skips, saying so, where libmodsecurity or the CRS is not installed
 * (scripts/setup-system.sh installs them).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { compilePolicy } from '@gw/cli/policy/index'
import { crsPaths } from '@gw/cli/policy/waf/crs'
import { fixture } from './ngrok-docs.js'
import { startEchoUpstream, startPolicyTunnel } from './tunnel-stack.js'
import { GW_BIN, spawnGw, tempDir } from '../helpers/stack.js'

const paths = crsPaths()
const skip = typeof paths === 'string' ? `the OWASP CRS cannot run here: ${paths}` : false
const policyOf = (id: string) => JSON.parse(JSON.stringify(fixture(id).policy)) as Record<string, unknown[]>

const SQLI = '/?id=1%27%20OR%20%271%27%3D%271'

test('owasp-crs-request (ngrok\'s block-mode example): a SQL injection in the query is 403 GW_ERR_POLICY_WAF_BLOCKED and never reaches the upstream; plain requests pass', { skip }, async () => {
  const upstream = await startEchoUpstream()
  const tunnel = await startPolicyTunnel(compilePolicy(policyOf('traffic-policy-actions-owasp-crs-request-4135e1')), upstream.url)
  try {
    const ok = await tunnel.fetch('/api/items?page=2', { headers: { 'user-agent': 'Mozilla/5.0', accept: '*/*' } })
    assert.equal(ok.status, 200)
    assert.equal(upstream.hits, 1)
    const bad = await tunnel.fetch(SQLI, { headers: { 'user-agent': 'Mozilla/5.0', accept: '*/*' } })
    assert.equal(bad.status, 403)
    assert.equal(bad.headers['gw-error-code'], 'GW_ERR_POLICY_WAF_BLOCKED')
    assert.match(bad.text, /blocked by the OWASP Core Rule Set \(anomaly score \d+, threshold 5\)/)
    assert.equal(upstream.hits, 1, 'the blocked request did not reach the upstream')
    // Without process_body the body is not looked at (ngrok's default).
    const body = await tunnel.fetch('/form', { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0', accept: '*/*' }, body: '{"q": "<script>alert(1)</script>"}' })
    assert.equal(body.status, 200)
  } finally {
    await tunnel.close()
    await upstream.close()
  }
})

test('owasp-crs-request process_body: ngrok\'s example XSS body is blocked; a benign 1 MiB body reaches the upstream whole; exclude_rule_ids lets a rule\'s match through', { skip }, async () => {
  const seen: { hash: string; size: number }[] = []
  const server = createServer((req, res) => {
    const h = createHash('sha256')
    let size = 0
    req.on('data', (c: Buffer) => { h.update(c); size += c.length })
    req.on('end', () => { seen.push({ hash: h.digest('hex'), size }); res.end('ok') })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const tunnel = await startPolicyTunnel(compilePolicy({ on_http_request: [{ actions: [{ type: 'owasp-crs-request', config: { on_error: 'halt', process_body: true } }] }] }), url)
  const excluding = await startPolicyTunnel(compilePolicy({ on_http_request: [{ actions: [{ type: 'owasp-crs-request', config: { exclude_rule_ids: [942100] } }] }] }), url)
  try {
    const json = { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0', accept: '*/*' }
    const xss = await tunnel.fetch('/', { method: 'POST', headers: json, body: '{"q": "<script>alert(1)</script>"}' })
    assert.equal(xss.status, 403)
    assert.equal(xss.headers['gw-error-code'], 'GW_ERR_POLICY_WAF_BLOCKED')
    assert.equal(seen.length, 0)
    const big = Buffer.from(JSON.stringify({ data: randomBytes(512 * 1024).toString('hex') }))
    const ok = await tunnel.fetch('/upload', { method: 'POST', headers: json, body: big })
    assert.equal(ok.status, 200, ok.text)
    assert.deepEqual(seen[0], { hash: createHash('sha256').update(big).digest('hex'), size: big.length }, 'the body after the 4 KB looked at arrives too')
    // 942100 (libinjection SQLi) is the one rule this request matches: excluded, it passes.
    assert.equal((await excluding.fetch(SQLI, { headers: { 'user-agent': 'Mozilla/5.0', accept: '*/*' } })).status, 200)
  } finally {
    await tunnel.close()
    await excluding.close()
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  }
})

test('owasp-crs-request test mode (ngrok\'s on_error: continue example): the decision, score and matched rules are recorded for the next actions, and the request goes on', { skip }, async () => {
  const upstream = await startEchoUpstream()
  const doc = policyOf('traffic-policy-actions-owasp-crs-request-dcfab0')
  doc.on_http_request!.push({ actions: [{ type: 'add-headers', config: { headers: { 'x-decision': '${actions.ngrok.owasp_crs_request.decision}', 'x-score': '${actions.ngrok.owasp_crs_request.anomaly_score}', 'x-first': '${actions.ngrok.owasp_crs_request.matched_rules[0].id}' } } }] })
  const tunnel = await startPolicyTunnel(compilePolicy(doc), upstream.url)
  try {
    const res = await tunnel.fetch(SQLI, { headers: { 'user-agent': 'Mozilla/5.0', accept: '*/*' } })
    assert.equal(res.status, 200, 'test mode does not enforce')
    const headers = (JSON.parse(res.text) as { headers: Record<string, string> }).headers
    assert.equal(headers['x-decision'], 'deny')
    assert.ok(Number(headers['x-score']) >= 5, headers['x-score'])
    assert.equal(headers['x-first'], '942100')
    const plain = JSON.parse((await tunnel.fetch('/fine', { headers: { 'user-agent': 'Mozilla/5.0', accept: '*/*' } })).text) as { headers: Record<string, string> }
    assert.equal(plain.headers['x-decision'], 'allow')
    assert.equal(plain.headers['x-score'], '0')
  } finally {
    await tunnel.close()
    await upstream.close()
  }
})

test('owasp-crs-response (ngrok\'s example, with process_body): an upstream page leaking a MySQL error is replaced by 403; a plain page passes', { skip }, async () => {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'text/html')
    if (req.url === '/leak') return res.end('<html>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use</html>')
    res.end('<html>hello</html>')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const doc = policyOf('traffic-policy-actions-owasp-crs-response-5528c8') as { on_http_response: Array<{ actions: Array<{ config: Record<string, unknown> }> }> }
  doc.on_http_response[0]!.actions[0]!.config.process_body = true
  const tunnel = await startPolicyTunnel(compilePolicy(doc), url)
  try {
    const leak = await tunnel.fetch('/leak', { headers: { 'user-agent': 'Mozilla/5.0', accept: '*/*' } })
    assert.equal(leak.status, 403)
    assert.equal(leak.headers['gw-error-code'], 'GW_ERR_POLICY_WAF_BLOCKED')
    assert.doesNotMatch(leak.text, /SQL syntax/)
    const fine = await tunnel.fetch('/', { headers: { 'user-agent': 'Mozilla/5.0', accept: '*/*' } })
    assert.equal(fine.status, 200)
    assert.equal(fine.text, '<html>hello</html>')
  } finally {
    await tunnel.close()
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  }
})

test('the real gw http with --traffic-policy-file: ngrok\'s example curl (an XSS in a JSON body) is blocked; without libmodsecurity the policy is refused with what to install', { skip }, async () => {
  const dir = tempDir('gw-waf-')
  const upstream = await startEchoUpstream()
  writeFileSync(join(dir, 'waf.yml'), 'on_http_request:\n  - actions:\n      - type: owasp-crs-request\n        config:\n          on_error: halt\n          process_body: true\n')
  const gw = spawnGw(['http', upstream.url, '--traffic-policy-file', join(dir, 'waf.yml'), '--log-format', 'json', '--inspect-addr', '127.0.0.1:0'], { GW_CONFIG: join(dir, 'gw.yml') })
  try {
    const line = await gw.waitForLine((l) => l.includes('"started tunnel"') && l.includes('"url":"http://'))
    const url = (JSON.parse(line) as { url: string }).url
    // Not spawnSync: the upstream answers from this process's event loop.
    const curl = (extra: string[]) => new Promise<{ stdout: string; stderr: string }>((resolve) =>
      execFile('curl', ['-sS', '--http1.1', '-o', '/dev/null', '-w', '%{http_code}', ...extra, url], { encoding: 'utf8' }, (_err, stdout, stderr) => resolve({ stdout, stderr })))
    const blocked = await curl(['-X', 'POST', '-H', 'User-Agent: Mozilla/5.0', '-H', 'Content-Type: application/json', '-d', '{"q": "<script>alert(1)</script>"}'])
    assert.equal(blocked.stdout, '403', blocked.stderr)
    const ok = await curl(['-X', 'POST', '-H', 'User-Agent: Mozilla/5.0', '-H', 'Content-Type: application/json', '-d', '{"q": "hello"}'])
    assert.equal(ok.stdout, '200', ok.stderr)
  } finally {
    gw.kill()
    await gw.exited
    await upstream.close()
  }
  const refused = spawnSync(process.execPath, [GW_BIN, 'policy', 'check', join(dir, 'waf.yml')], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', GW_CONFIG: join(dir, 'gw.yml'), GW_MODSECURITY_LIB: join(dir, 'no-such-libmodsecurity.so') } })
  assert.equal(refused.status, 2)
  assert.match(refused.stderr.replace(/\s*\n ›\s+/g, ' '), /needs libmodsecurity, which is not on this machine \(GW_MODSECURITY_LIB=.*\): install ModSecurity v3 and the OWASP CRS \(Debian: apt install libmodsecurity3 modsecurity-crs/)
  rmSync(dir, { recursive: true, force: true })
})
