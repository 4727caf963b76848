/**
 * Where ACME keeps its state, under the relay's state directory:
 *
 *   acme/account-key.pem          the account's key (0600); the account is found again from it
 *   acme/certs/<host>.pem         certificate chain, leaf first
 *   acme/certs/<host>.key.pem     its key (0600)
 *
 * A wildcard's file name spells `*` as `_wildcard` (`_wildcard.tunnel.example.com.pem`).
 * Files are written to a temporary name and renamed, so a crash never leaves half a PEM.
 */
import { X509Certificate } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

export interface StoredCert {
  /** The host the certificate was ordered for (`app.tunnel.example.com`, `*.tunnel.example.com`). */
  host: string
  cert: string
  key: string
  notBefore: number
  notAfter: number
  /** The DNS names in its subjectAltName. */
  names: string[]
  issuer: string
}

export class AcmeStore {
  readonly dir: string
  private readonly certDir: string

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'acme')
    this.certDir = join(this.dir, 'certs')
    mkdirSync(this.certDir, { recursive: true, mode: 0o700 })
  }

  accountKey(): string | undefined {
    const path = join(this.dir, 'account-key.pem')
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined
  }

  saveAccountKey(pem: string): void {
    atomicWrite(join(this.dir, 'account-key.pem'), pem, 0o600)
  }

  /** Every stored certificate that still parses; a broken pair is skipped (and reissued when asked for). */
  loadAll(onBroken: (file: string, err: Error) => void): StoredCert[] {
    const out: StoredCert[] = []
    for (const entry of readdirSync(this.certDir)) {
      if (!entry.endsWith('.pem') || entry.endsWith('.key.pem')) continue
      const host = fileToHost(entry.slice(0, -'.pem'.length))
      try {
        const cert = readFileSync(join(this.certDir, entry), 'utf8')
        const key = readFileSync(join(this.certDir, `${entry.slice(0, -4)}.key.pem`), 'utf8')
        out.push(describe(host, cert, key))
      } catch (err) {
        onBroken(entry, err as Error)
      }
    }
    return out
  }

  save(host: string, cert: string, key: string): StoredCert {
    const stored = describe(host, cert, key)
    const base = join(this.certDir, hostToFile(host))
    atomicWrite(`${base}.key.pem`, key, 0o600)
    atomicWrite(`${base}.pem`, cert, 0o644)
    return stored
  }

  remove(host: string): void {
    const base = join(this.certDir, hostToFile(host))
    rmSync(`${base}.pem`, { force: true })
    rmSync(`${base}.key.pem`, { force: true })
  }
}

export function describe(host: string, cert: string, key: string): StoredCert {
  const x509 = new X509Certificate(cert)
  const names = (x509.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase())
  return {
    host,
    cert,
    key,
    notBefore: Date.parse(x509.validFrom),
    notAfter: Date.parse(x509.validTo),
    names,
    issuer: x509.issuer,
  }
}

function hostToFile(host: string): string {
  return host.replace(/^\*\./, '_wildcard.')
}

function fileToHost(file: string): string {
  return file.replace(/^_wildcard\./, '*.')
}

function atomicWrite(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, data, { mode })
  renameSync(tmp, path)
}
