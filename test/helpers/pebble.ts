/**
 * A real ACME CA for tests: pebble, with pebble-challtestsrv as its DNS (every A query
 * answers 127.0.0.1; TXT records are set through its management API). Both listen on
 * 127.0.0.1 free ports, with a config written for the run. Pebble validates HTTP-01 and
 * TLS-ALPN-01 on the ports given, which are the relay's.
 *
 * Debian package `pebble` (scripts/setup-system.sh); tests skip when it is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, request } from 'node:https'
import { request as httpRequest } from 'node:http'
import { generate } from 'selfsigned'
import { freePorts } from './stack.js'

export const PEBBLE_SKIP: string | false =
  spawnSync('pebble', ['-h']).error || spawnSync('pebble-challtestsrv', ['-h']).error
    ? 'pebble is not installed (scripts/setup-system.sh installs the Debian package pebble)'
    : false

export interface Pebble {
  directoryUrl: string
  /** PEM of pebble's own HTTPS listener certificate (trust it to talk to the directory). */
  listenerCa: string
  /** challtestsrv's management API, e.g. http://127.0.0.1:port (POST /set-txt, /clear-txt, /add-a …). */
  challtestsrvUrl: string
  /** challtestsrv's DNS server, host:port. */
  dnsServer: string
  /** The root certificate pebble issues under (it is made anew on every start). */
  root(): Promise<string>
  /** The intermediate certificate. */
  intermediate(): Promise<string>
  /** POST a JSON body to challtestsrv's management API. */
  challtestsrv(path: string, body: unknown): Promise<void>
  log(): string
  close(): Promise<void>
}

export interface PreparedPebble {
  /** Known before pebble runs, so a relay can be configured before pebble starts. */
  directoryUrl: string
  listenerCa: string
  challtestsrvUrl: string
  start(ports: { httpPort: number; tlsPort: number }): Promise<Pebble>
}

export { freePorts }

export async function preparePebble(options: { dir: string; validitySeconds?: number }): Promise<PreparedPebble & { relayPorts: [number, number] }> {
  const [acmePort, mgmtPort, dnsPort, cmgmtPort, relayHttp, relayHttps] = (await freePorts(6)) as [number, number, number, number, number, number]
  const pair = await generate([{ name: 'commonName', value: 'pebble listener' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 24 * 3600_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] }],
  })
  writeFileSync(join(options.dir, 'pebble-cert.pem'), pair.cert)
  writeFileSync(join(options.dir, 'pebble-key.pem'), pair.private)
  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`
  return {
    directoryUrl,
    listenerCa: pair.cert,
    challtestsrvUrl: `http://127.0.0.1:${cmgmtPort}`,
    relayPorts: [relayHttp, relayHttps],
    start: (ports) => runPebble(options, ports, { acmePort, mgmtPort, dnsPort, cmgmtPort }, pair.cert, directoryUrl),
  }
}

async function runPebble(
  options: { dir: string; validitySeconds?: number },
  ports: { httpPort: number; tlsPort: number },
  { acmePort, mgmtPort, dnsPort, cmgmtPort }: { acmePort: number; mgmtPort: number; dnsPort: number; cmgmtPort: number },
  listenerCa: string,
  directoryUrl: string,
): Promise<Pebble> {
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: join(options.dir, 'pebble-cert.pem'),
      privateKey: join(options.dir, 'pebble-key.pem'),
      httpPort: ports.httpPort,
      tlsPort: ports.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(options.validitySeconds ? { certificateValidityPeriod: options.validitySeconds } : {}),
    },
  }
  const configPath = join(options.dir, 'pebble-config.json')
  writeFileSync(configPath, JSON.stringify(config))

  let output = ''
  const children: ChildProcess[] = []
  const run = (cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    const take = (d: Buffer): void => {
      output += d.toString()
    }
    child.stdout!.on('data', take)
    child.stderr!.on('data', take)
    children.push(child)
    return child
  }
  run('pebble-challtestsrv', ['-http01', '', '-https01', '', '-tlsalpn01', '', '-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${cmgmtPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''])
  // No random sleeps before validation, no nonce rejections, no reuse of earlier
  // authorizations: every order in a test is validated anew.
  run('pebble', ['-config', configPath, '-dnsserver', `127.0.0.1:${dnsPort}`], { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' })

  const agent = new Agent({ ca: listenerCa })
  const get = (url: string): Promise<string> =>
    new Promise((resolve, reject) => {
      request(url, { agent }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))))
      }).on('error', reject).end()
    })
  const challtestsrvUrl = `http://127.0.0.1:${cmgmtPort}`
  const post = (path: string, body: unknown): Promise<void> =>
    new Promise((resolve, reject) => {
      const data = JSON.stringify(body)
      httpRequest(`${challtestsrvUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
        res.resume()
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${res.statusCode}`))))
      }).on('error', reject).end(data)
    })

  const close = async (): Promise<void> => {
    agent.destroy()
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGTERM')
    })))
  }
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      await get(directoryUrl)
      await post('/clear-txt', { host: 'probe.invalid.' })
      break
    } catch (err) {
      if (Date.now() > deadline || children.some((c) => c.exitCode !== null)) {
        await close()
        throw new Error(`pebble did not start: ${(err as Error).message}\n${output}`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return {
    directoryUrl,
    listenerCa,
    challtestsrvUrl,
    dnsServer: `127.0.0.1:${dnsPort}`,
    root: () => get(`https://127.0.0.1:${mgmtPort}/roots/0`),
    intermediate: () => get(`https://127.0.0.1:${mgmtPort}/intermediates/0`),
    challtestsrv: post,
    log: () => output,
    close,
  }
}
