/**
 * Certificate reload on a real `gw relay` process: a renewed certificate written over the
 * old files (as certbot does) is served to new TLS handshakes after a real SIGHUP, or
 * after the config file is changed to point at new files, while a TLS connection opened
 * before keeps working. A certificate that does not load is refused and the running one
 * stays. Without --config, SIGHUP reloads --tls-cert/--tls-key.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { generate } from 'selfsigned'
import { spawnRelay, tempDir, type Spawned, type SpawnedRelay } from '../helpers/stack.js'

interface Made { cert: string; key: string; fingerprint: string }

async function makeCert(cn: string): Promise<Made> {
  const made = await generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: '*.tunnel.test' }, { type: 2, value: 'tunnel.test' }] }],
  })
  return { cert: made.cert, key: made.private, fingerprint: new X509Certificate(made.cert).fingerprint256 }
}

function open(port: number, ca: string[]): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'app.tunnel.test', ca }, () => resolve(socket))
    socket.once('error', reject)
  })
}

/** The fingerprint of the certificate a new handshake gets. */
async function served(port: number, ca: string[]): Promise<string> {
  const socket = await open(port, ca)
  const fingerprint = socket.getPeerX509Certificate()!.fingerprint256
  socket.destroy()
  return fingerprint
}

/** One request on an open TLS connection: the relay's own /healthz. */
function healthz(socket: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (d: Buffer): void => {
      text += d.toString()
      const end = text.indexOf('\r\n\r\n')
      const length = /content-length: (\d+)/i.exec(text)
      if (end !== -1 && length && text.length >= end + 4 + Number(length[1])) {
        socket.off('data', onData)
        resolve(text)
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.write('GET /healthz HTTP/1.1\r\nHost: tunnel.test\r\n\r\n')
  })
}

const reloads = (relay: Spawned, text: string): number => relay.lines.filter((l) => l.includes(text)).length

describe('relay certificate reload', () => {
  it('--config: SIGHUP and a changed file serve the new certificate to new handshakes; old connections stay; a bad one is refused', { timeout: 90_000 }, async (t) => {
    const dir = tempDir()
    const [a, b, c] = await Promise.all([makeCert('cert a'), makeCert('cert b'), makeCert('cert c')])
    const ca = [a.cert, b.cert, c.cert]
    writeFileSync(join(dir, 'cert.pem'), a.cert)
    writeFileSync(join(dir, 'key.pem'), a.key)
    const configPath = join(dir, 'relay.yml')
    const config = (cert: string, key: string): void => writeFileSync(configPath, [
      'domain: tunnel.test', 'host: 127.0.0.1', 'http_port: 0', 'https_port: 0', `state_dir: ${join(dir, 'state')}`,
      `tls: { cert: ${join(dir, cert)}, key: ${join(dir, key)} }`, '',
    ].join('\n'))
    config('cert.pem', 'key.pem')
    // One relay process: the checks follow its reload lines one by one (with --workers each
    // worker reloads and logs; SIGHUP across workers: relay-workers-ipc.test.ts).
    let relay: SpawnedRelay | undefined
    t.after(async () => {
      await relay?.stop()
      rmSync(dir, { recursive: true, force: true })
    })
    relay = await spawnRelay({ config: configPath })
    const port = relay.httpsPort!
    assert.equal(await served(port, ca), a.fingerprint)
    const kept = await open(port, ca)
    t.after(() => kept.destroy())
    assert.match(await healthz(kept), /^HTTP\/1\.1 200 /)

    // certbot renews in place: same paths, new files, then `systemctl reload` (SIGHUP).
    writeFileSync(join(dir, 'cert.pem'), b.cert)
    writeFileSync(join(dir, 'key.pem'), b.key)
    // The file watcher sees only relay.yml; the certificate files are read again on SIGHUP.
    relay.kill('SIGHUP')
    await relay.waitForLine((l) => l.includes('"config reloaded"') && l.includes('"SIGHUP"'))
    assert.equal(await served(port, ca), b.fingerprint)
    assert.match(await healthz(kept), /^HTTP\/1\.1 200 /, 'the connection opened before the reload still works')
    assert.equal(kept.getPeerX509Certificate()!.fingerprint256, a.fingerprint)

    // New paths in the file: the change alone reloads it.
    writeFileSync(join(dir, 'cert-c.pem'), c.cert)
    writeFileSync(join(dir, 'key-c.pem'), c.key)
    const before = reloads(relay, '"config reloaded"')
    config('cert-c.pem', 'key-c.pem')
    await relay.waitForLine((l) => l.includes('"config reloaded"') && l.includes('"file change"') && reloads(relay, '"config reloaded"') > before)
    assert.equal(await served(port, ca), c.fingerprint)

    // A certificate that does not load (a half-written file, a key of another certificate): refused, C stays.
    writeFileSync(join(dir, 'cert-c.pem'), 'not a certificate\n')
    relay.kill('SIGHUP')
    const refused = await relay.waitForLine((l) => l.includes('"config reload refused') && l.includes('"SIGHUP"'))
    assert.match(refused, /GW_ERR_RELAY_TLS/)
    assert.equal(await served(port, ca), c.fingerprint)
    writeFileSync(join(dir, 'cert-c.pem'), b.cert) // b's certificate with c's key
    relay.kill('SIGHUP')
    await relay.waitForLine((l) => l.includes('"config reload refused') && l.includes('"SIGHUP"') && reloads(relay, 'config reload refused') >= 2)
    assert.equal(await served(port, ca), c.fingerprint)
    assert.match(await healthz(kept), /^HTTP\/1\.1 200 /)
    assert.equal(relay.child.exitCode, null)
  })

  it('without --config, SIGHUP reloads --tls-cert and --tls-key', { timeout: 60_000 }, async (t) => {
    const dir = tempDir()
    const [a, b] = await Promise.all([makeCert('cert a'), makeCert('cert b')])
    writeFileSync(join(dir, 'cert.pem'), a.cert)
    writeFileSync(join(dir, 'key.pem'), a.key)
    let relay: SpawnedRelay | undefined
    t.after(async () => {
      await relay?.stop()
      rmSync(dir, { recursive: true, force: true })
    })
    relay = await spawnRelay({ domain: 'tunnel.test', httpsPort: 0, stateDir: join(dir, 'state'), args: ['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')] })
    const port = relay.httpsPort!
    assert.equal(await served(port, [a.cert, b.cert]), a.fingerprint)
    writeFileSync(join(dir, 'cert.pem'), b.cert)
    writeFileSync(join(dir, 'key.pem'), b.key)
    relay.kill('SIGHUP')
    await relay.waitForLine((l) => l.includes('SIGHUP: certificate reloaded'))
    assert.equal(await served(port, [a.cert, b.cert]), b.fingerprint)
    writeFileSync(join(dir, 'key.pem'), 'garbage\n')
    relay.kill('SIGHUP')
    await relay.waitForLine((l) => l.includes('SIGHUP: certificate reload refused'))
    assert.equal(await served(port, [a.cert, b.cert]), b.fingerprint)
  })
})
