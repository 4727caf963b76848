/**
 * The real binaries: `gw tcp` with the embedded relay (the URL in the banner, the JSON
 * log line and the agent API's /api/tunnels, proto "tcp" as in ngrok), `gw relay
 * --tcp-ports` with `gw tcp --relay … --url tcp://…:PORT`, and a real OpenSSH session
 * (sshd on a loopback port, the ssh client through the tunnel) when OpenSSH is installed.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { freePort, spawnGw, spawnRelay, tempDir, waitFor, type SpawnedRelay } from '../helpers/stack.js'
import { echo, exchange, portOf, startTcpServer } from '../helpers/tcp.js'

function which(cmd: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd)
  }
  return undefined
}

describe('gw tcp (the CLI)', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  it('with no relay: the embedded one, tcp://127.0.0.1:<port> in the log and in /api/tunnels', async () => {
    const dir = tempDir()
    const upstream = await startTcpServer(echo)
    const gw = spawnGw(['tcp', String(upstream.port), '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0', '--config', join(dir, 'gw.yml')])
    cleanups.push(async () => {
      gw.kill()
      await gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    const started = JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string; addr: string }
    assert.match(started.url, /^tcp:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(started.addr, `localhost:${upstream.port}`)
    const api = JSON.parse(await gw.waitForLine((l) => l.includes('"agent API"'))) as { url: string }
    const tunnels = await (await fetch(`${api.url}/api/tunnels`)).json() as { tunnels: Array<{ public_url: string; proto: string; config: { addr: string } }> }
    assert.equal(tunnels.tunnels.length, 1)
    assert.equal(tunnels.tunnels[0]!.proto, 'tcp')
    assert.equal(tunnels.tunnels[0]!.public_url, started.url)
    assert.equal((await exchange(portOf(started.url), 'through the binary')).received.toString(), 'through the binary')
    assert.equal((await exchange(portOf(started.url), 'twice')).received.toString(), 'twice')
    // ngrok's conns metrics count tcp connections: two so far, none open once they closed.
    await waitFor(async () => {
      const t = await (await fetch(`${api.url}/api/tunnels`)).json() as { tunnels: Array<{ metrics: { conns: { count: number; gauge: number } } }> }
      return t.tunnels[0]!.metrics.conns.count === 2 && t.tunnels[0]!.metrics.conns.gauge === 0
    }, 5000, 'conns count 2, gauge 0')
    // ngrok's v3 API starts a tcp endpoint too.
    const posted = await fetch(`${api.url}/api/endpoints`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'extra', url: 'tcp://', upstream: { url: String(upstream.port) } }) })
    assert.equal(posted.status, 201)
    const extra = await posted.json() as { url: string }
    assert.match(extra.url, /^tcp:\/\/127\.0\.0\.1:\d+$/)
    assert.equal((await exchange(portOf(extra.url), 'via the API')).received.toString(), 'via the API')
  })

  it('gw start: tcp:// and tls:// endpoints from the config file beside an http one, on_tcp_connect inline', async () => {
    const dir = tempDir()
    const upstream = await startTcpServer(echo)
    const file = join(dir, 'gw.yml')
    writeFileSync(file, [
      'version: 3',
      'endpoints:',
      `  - {name: db, url: "tcp://", upstream: {url: ${upstream.port}}}`,
      `  - name: guarded`,
      `    url: "tcp://"`,
      `    upstream: {url: ${upstream.port}}`,
      `    traffic_policy: {on_tcp_connect: [{actions: [{type: restrict-ips, config: {deny: [127.0.0.0/8]}}]}]}`,
      `  - {name: web, url: web, upstream: {url: ${upstream.port}}}`,
      '',
    ].join('\n'))
    const gw = spawnGw(['start', '--all', '--config', file, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0'])
    cleanups.push(async () => {
      gw.kill()
      await gw.exited
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    const urls = new Map<string, string>()
    for (let i = 0; i < 3; i++) {
      await gw.waitForLine((l) => l.includes('"started tunnel"') && gw.lines.filter((x) => x.includes('"started tunnel"')).length > i)
    }
    for (const l of gw.lines.filter((x) => x.includes('"started tunnel"'))) {
      const j = JSON.parse(l) as { name: string; url: string }
      if (!urls.has(j.name)) urls.set(j.name, j.url)
    }
    assert.match(urls.get('db')!, /^tcp:\/\/127\.0\.0\.1:\d+$/)
    assert.equal((await exchange(portOf(urls.get('db')!), 'from the config')).received.toString(), 'from the config')
    assert.equal((await exchange(portOf(urls.get('guarded')!), 'x', { keepOpen: true })).ending, 'ECONNRESET')
    assert.match(urls.get('web')!, /^https?:\/\/web\.localhost:\d+$/)
  })

  it('gw relay --tcp-ports and gw tcp --url tcp://HOST:PORT: the asked port, then refused to another token', async () => {
    const dir = tempDir()
    const httpPort = await freePort()
    const asked = await freePort()
    const upstream = await startTcpServer(echo)
    let relay: SpawnedRelay | undefined
    cleanups.push(async () => {
      await relay?.stop()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    })
    relay = await spawnRelay({ workers: null, httpPort, stateDir: join(dir, 'relay'), args: ['--tcp-ports', `${asked}-${asked}`], env: { GW_RELAY_AUTHTOKENS: 'tok-a,tok-b' } })
    const common = ['--relay', `http://127.0.0.1:${httpPort}`, '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0']
    const a = spawnGw(['tcp', String(upstream.port), '--url', `tcp://localhost:${asked}`, ...common, '--config', join(dir, 'a.yml')], { GW_AUTHTOKEN: 'tok-a' })
    cleanups.push(async () => {
      a.kill()
      await a.exited
    })
    const started = JSON.parse(await a.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
    assert.equal(started.url, `tcp://127.0.0.1:${asked}`)
    assert.equal((await exchange(asked, 'asked port')).received.toString(), 'asked port')
    const b = spawnGw(['tcp', String(upstream.port), '--remote-addr', `localhost:${asked}`, ...common, '--config', join(dir, 'b.yml')], { GW_AUTHTOKEN: 'tok-b' })
    assert.notEqual(await b.exited, 0)
    assert.match(b.stderr(), /TCP port \d+ belongs to another authtoken.*GW_ERR_TCP_PORT_TAKEN/s)
  })

  it('a real OpenSSH session through the tunnel', async (t) => {
    const sshd = which('sshd')
    const ssh = which('ssh')
    const keygen = which('ssh-keygen')
    if (!sshd || !ssh || !keygen) return t.skip('OpenSSH is not installed (scripts/setup-system.sh installs openssh-server)')
    const dir = tempDir()
    for (const file of ['host_key', 'user_key']) execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, file)], { stdio: 'ignore' })
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'user_key.pub')))
    const sshdPort = await freePort()
    writeFileSync(join(dir, 'sshd_config'), [
      `Port ${sshdPort}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host_key`, `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`, 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password', 'UsePAM no', 'StrictModes no', '',
    ].join('\n'))
    if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
    const server = spawn(sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] })
    let serverErr = ''
    server.stderr.on('data', (d: Buffer) => { serverErr += d.toString() })
    const gw = spawnGw(['tcp', String(sshdPort), '--log-format', 'json', '--no-tui', '--inspect-addr', '127.0.0.1:0', '--config', join(dir, 'gw.yml')])
    cleanups.push(async () => {
      gw.kill()
      server.kill()
      await gw.exited
      rmSync(dir, { recursive: true, force: true })
    })
    const started = JSON.parse(await gw.waitForLine((l) => l.includes('"started tunnel"'))) as { url: string }
    await waitFor(async () => (await exchange(sshdPort, '', { keepOpen: false })).received.toString().startsWith('SSH-2.0-'), 10_000, `sshd to listen (${serverErr})`)
    const result = spawnSync(ssh, ['-F', '/dev/null', '-T', '-p', String(portOf(started.url)), '-i', join(dir, 'user_key'),
      '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      `${userInfo().username}@127.0.0.1`, 'echo', 'hello-through-gw', '&&', 'head', '-c', '1048576', '/dev/zero', '|', 'sha256sum'], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(result.status, 0, `ssh failed: ${result.stderr}\nsshd: ${serverErr}`)
    assert.match(result.stdout, /^hello-through-gw\n30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58 {2}-\n$/)
  })
})
