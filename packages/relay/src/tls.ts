/**
 * The relay's TLS: certificates given with --tls-cert/--tls-key, or a local CA that the
 * relay makes once and keeps in its state directory (so clients trust it once, and it
 * survives restarts), with a wildcard certificate for the domain signed by it.
 *
 * A wildcard cannot cover a single-label domain: TLS clients refuse `*.localhost`, as
 * they refuse `*.com`. For such a domain (the embedded relay's `localhost`) the relay
 * signs a certificate per name on first use, through SNI.
 */
import { createSecureContext, type SecureContext } from 'node:tls'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generate } from 'selfsigned'
import { RelayError } from './errors.js'
import { pairContext } from './context-pairs.js'

export interface RelayTls {
  /** PEM of the certificate clients must trust: the generated CA, or the given cert. */
  trustPem: string
  /** Where that PEM is on disk, to print for users. */
  trustPath: string
  key: string
  cert: string
  SNICallback: ((servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void) | undefined
}

const YEAR = 365 * 24 * 3600 * 1000

export async function loadTls(options: { stateDir: string; domain: string; certPath?: string; keyPath?: string }): Promise<RelayTls> {
  const { stateDir, domain, certPath, keyPath } = options
  if (certPath || keyPath) {
    if (!certPath || !keyPath) {
      throw new RelayError('GW_ERR_RELAY_TLS', 'give both --tls-cert and --tls-key, or neither to use a generated certificate')
    }
    try {
      const cert = readFileSync(certPath, 'utf8')
      const key = readFileSync(keyPath, 'utf8')
      createSecureContext({ cert, key }) // fail now, with the path, not on the first handshake
      return { trustPem: cert, trustPath: certPath, cert, key, SNICallback: undefined }
    } catch (err) {
      throw new RelayError('GW_ERR_RELAY_TLS', `cannot load ${certPath} / ${keyPath}: ${(err as Error).message}`, { cause: err })
    }
  }

  mkdirSync(stateDir, { recursive: true })
  const ca = await loadOrCreate(join(stateDir, 'ca.pem'), join(stateDir, 'ca-key.pem'), async () =>
    toPair(await generate([{ name: 'commonName', value: `gw relay CA (${domain})` }], {
      keyType: 'ec',
      algorithm: 'sha256',
      curve: 'P-256',
      notAfterDate: new Date(Date.now() + 10 * YEAR),
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      ],
    })),
  )
  const leaf = await loadOrCreate(join(stateDir, 'tls.pem'), join(stateDir, 'tls-key.pem'), () =>
    signLeaf(ca, [`*.${domain}`, domain]),
  )

  let SNICallback: RelayTls['SNICallback']
  if (!domain.includes('.')) {
    const contexts = new Map<string, Promise<SecureContext>>()
    SNICallback = (servername, cb) => {
      const name = servername.toLowerCase()
      if (!name.endsWith(`.${domain}`) && name !== domain) return cb(null, undefined)
      let ctx = contexts.get(name)
      if (!ctx) {
        // Bounded: names come from clients, so the cache must not grow without end.
        if (contexts.size >= 1000) contexts.delete(contexts.keys().next().value!)
        ctx = signLeaf(ca, [name]).then((pair) => pairContext({ cert: chain(pair.cert, ca.cert), key: pair.key }))
        contexts.set(name, ctx)
      }
      ctx.then((c) => cb(null, c), (err: Error) => cb(err))
    }
  }
  return { trustPem: ca.cert, trustPath: join(stateDir, 'ca.pem'), cert: chain(leaf.cert, ca.cert), key: leaf.key, SNICallback }
}

/** Leaf then CA, so clients that trust the CA can build the chain. */
function chain(leaf: string, ca: string): string {
  return `${leaf.trimEnd()}\n${ca.trimEnd()}\n`
}

interface Pair {
  cert: string
  key: string
}

async function signLeaf(ca: Pair, names: string[]): Promise<Pair> {
  const result = await generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec',
    algorithm: 'sha256',
    curve: 'P-256',
    notBeforeDate: new Date(Date.now() - 3600 * 1000),
    notAfterDate: new Date(Date.now() + 2 * YEAR),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map((value) => ({ type: 2 as const, value })) },
    ],
  })
  return toPair(result)
}

function toPair(result: { cert: string; private: string }): Pair {
  return { cert: result.cert, key: result.private }
}

async function loadOrCreate(certPath: string, keyPath: string, create: () => Promise<Pair>): Promise<Pair> {
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') }
  }
  const made = await create()
  writeFileSync(keyPath, made.key, { mode: 0o600 })
  writeFileSync(certPath, made.cert)
  return made
}
