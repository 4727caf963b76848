// The two anchor rows: what one C reverse-proxy hop costs (nginx), and what the most common
// self-made tunnel costs (OpenSSH's remote forward, `ssh -R`, as serveo, sish and
// localhost.run use it). Each is skipped, with the reason, when its program is not
// installed (scripts/setup-system.sh installs nginx-light and openssh-server).
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { startCommand, stopChild, track } from './children.mjs'

function which(name) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (dir && existsSync(join(dir, name))) return join(dir, name)
  }
  return undefined
}

/** A free loopback port, for programs that cannot report the one they took. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

/** The pids below `pid`, depth first (Linux /proc). */
function descendants(pid) {
  const out = []
  for (const task of safeReaddir(`/proc/${pid}/task`)) {
    let kids = ''
    try { kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim() } catch {}
    for (const k of kids.split(' ').filter(Boolean).map(Number)) out.push(k, ...descendants(k))
  }
  return out
}

function safeReaddir(dir) {
  try { return readdirSync(dir) } catch { return [] }
}

function cmdline(pid) {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim() } catch { return '' }
}

function waitPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve() })
      s.once('error', () => {
        if (Date.now() > deadline) reject(new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

/**
 * nginx as one reverse-proxy hop: one worker, HTTP/1.1 with keep-alive to the upstream,
 * request and response bodies streamed (no buffering to temp files), the access log on,
 * as a default install has it (gw logs every request too). The config is generated per
 * run in a temp dir, and nginx runs in the foreground as the current user.
 * `h2: { certFile, keyFile }` makes the listener HTTP/2 over TLS (`listen … ssl http2`, the
 * form nginx 1.22, Debian 12's, takes) with that certificate, for scenario 9; the hop to the
 * upstream stays HTTP/1.1 with keep-alive (nginx proxies HTTP/2 only as gRPC).
 * `grpc: true` (with h2) proxies with `grpc_pass` to an h2c gRPC upstream instead, keep-alive
 * too (scenario 11).
 */
export async function startNginx(upstreamPort, { h2, grpc = false } = {}) {
  const bin = which('nginx')
  if (!bin) return { available: false, reason: 'nginx is not installed (scripts/setup-system.sh installs nginx-light)' }
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-nginx-'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  // As root, nginx would switch its worker to `nobody`, who cannot write to this dir.
  const user = process.getuid?.() === 0 ? `user ${userInfo().username};` : ''
  writeFileSync(conf, `${user}
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 20000; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port}${h2 ? ' ssl http2' : ''} reuseport;
${h2 ? `    ssl_certificate ${h2.certFile};\n    ssl_certificate_key ${h2.keyFile};\n` : ''}    client_max_body_size 0;
    location / {
${grpc ? '      grpc_pass grpc://app;' : `      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_request_buffering off;`}
    }
  }
}
`)
  const child = track(spawn(bin, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] }))
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const close = async () => { await stopChild(child); rmSync(dir, { recursive: true, force: true }) }
  try {
    await Promise.race([waitPort(port), new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`nginx exited with ${code}: ${stderr.trim().slice(0, 300)}`))))])
  } catch (err) {
    await close()
    return { available: false, reason: err.message }
  }
  // The master only supervises; requests go through the one worker.
  const worker = descendants(child.pid)[0]
  return {
    available: true,
    port,
    host: `127.0.0.1:${port}`,
    procs: [{ role: 'nginx worker', pid: worker ?? child.pid, child: undefined }],
    close,
  }
}

/**
 * `ssh -R`: an sshd on a loopback port with a throwaway host key and user key, and an ssh
 * client that asks it to listen on a loopback port and forward each connection back to the
 * upstream, through the one encrypted TCP connection (OpenSSH's default cipher,
 * chacha20-poly1305). Clients connect to the port sshd listens on.
 */
export async function startSshTunnel(upstreamPort) {
  const sshd = which('sshd')
  const ssh = which('ssh')
  const keygen = which('ssh-keygen')
  if (!sshd || !ssh || !keygen) {
    return { available: false, reason: `${!sshd ? 'sshd' : !ssh ? 'ssh' : 'ssh-keygen'} is not installed (scripts/setup-system.sh installs openssh-server)` }
  }
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-ssh-'))
  const children = []
  const close = async () => {
    for (const c of children.reverse()) await stopChild(c)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const [file, type] of [['host_key', 'ed25519'], ['user_key', 'ed25519']]) {
      execFileSync(keygen, ['-q', '-t', type, '-N', '', '-f', join(dir, file)], { stdio: 'ignore' })
    }
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'user_key.pub')))
    const port = await freePort()
    writeFileSync(join(dir, 'sshd_config'), `Port ${port}
ListenAddress 127.0.0.1
HostKey ${dir}/host_key
PidFile ${dir}/sshd.pid
AuthorizedKeysFile ${dir}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
`)
    // As root, sshd wants its privilege-separation directory, which the Debian service
    // creates at boot; a container that never started the service lacks it.
    if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
    const server = track(spawn(sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] }))
    children.push(server)
    let serverErr = ''
    server.stderr.on('data', (d) => { if (serverErr.length < 4000) serverErr += d })
    await Promise.race([waitPort(port), new Promise((_, reject) => server.once('exit', (code) => reject(new Error(`sshd exited with ${code}: ${serverErr.trim().slice(0, 300)}`))))])
    // Port 0: sshd picks the forwarded port and the client prints it.
    const client = await startCommand(ssh, ['-F', '/dev/null', '-N', '-T', '-p', String(port), '-i', join(dir, 'user_key'),
      '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'ExitOnForwardFailure=yes', '-o', 'LogLevel=INFO',
      '-R', `127.0.0.1:0:127.0.0.1:${upstreamPort}`, `${userInfo().username}@127.0.0.1`], {
      matcher: (out) => /Allocated port (\d+) for remote forward/.exec(out)?.[1],
      timeoutMs: 15_000,
    })
    children.push(client.child)
    const forwarded = Number(client.found)
    // sshd forks a monitor per connection and, after authentication, the process that
    // moves the forwarded bytes; both are the connection's.
    const sessions = descendants(server.pid).map((pid) => ({ pid, line: cmdline(pid) }))
    const role = (line) => (/\[priv\]/.test(line) ? 'sshd monitor' : /@notty|@/.test(line) ? 'sshd session' : 'sshd')
    return {
      available: true,
      port: forwarded,
      host: `127.0.0.1:${forwarded}`,
      procs: [
        { role: 'ssh', pid: client.child.pid, child: undefined },
        ...sessions.map((s) => ({ role: role(s.line), pid: s.pid, child: undefined })),
      ],
      close,
    }
  } catch (err) {
    await close()
    return { available: false, reason: `ssh -R: ${err.message.split('\n')[0].slice(0, 300)}` }
  }
}
