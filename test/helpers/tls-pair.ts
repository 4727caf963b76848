/** A throwaway self-signed certificate and key (PEM) made with openssl, for examples that need one (terminate-tls). */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

let pair: { cert: string; key: string } | undefined

export function tlsPair(): { cert: string; key: string } {
  if (pair) return pair
  const dir = mkdtempSync(join(tmpdir(), 'gw-tls-pair-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=localhost'], { stdio: 'ignore' })
    pair = { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') }
    return pair
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

let ca: string | undefined

/** A throwaway CA certificate (PEM), for mutual TLS examples. */
export function tlsCa(): string {
  if (ca) return ca
  const dir = mkdtempSync(join(tmpdir(), 'gw-tls-ca-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=example client CA', '-addext', 'basicConstraints=critical,CA:TRUE'], { stdio: 'ignore' })
    ca = readFileSync(join(dir, 'ca.pem'), 'utf8')
    return ca
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The docs' vault for terminate-tls: tls/cert, tls/key and tls/client-ca. */
export function tlsSecret(vault: string, name: string): string | undefined {
  if (vault !== 'tls') return undefined
  return name === 'cert' ? tlsPair().cert : name === 'key' ? tlsPair().key : name === 'client-ca' ? tlsCa() : undefined
}
