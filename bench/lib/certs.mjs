// A per-run CA and one leaf certificate signed by it, made with the openssl command line,
// for the TLS listeners the harness runs itself (the h2 upstream, nginx's h2 listener).
// gw's relay makes its own CA (`gw relay` prints its path), as a user's relay would.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Writes ca.pem, leaf.pem and leaf.key in `dir`: an EC P-256 CA and a leaf for
 * localhost, *.localhost and 127.0.0.1. Returns the paths and the PEMs.
 */
export function makeCa(dir) {
  const f = (name) => join(dir, name)
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=gw bench per-run CA', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost',
    '-keyout', f('leaf.key'), '-out', f('leaf.csr'))
  writeFileSync(f('leaf.ext'), 'subjectAltName=DNS:localhost,DNS:*.localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  openssl('x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-sha256', '-extfile', f('leaf.ext'), '-out', f('leaf.pem'))
  return {
    caFile: f('ca.pem'), certFile: f('leaf.pem'), keyFile: f('leaf.key'),
    caPem: readFileSync(f('ca.pem'), 'utf8'), certPem: readFileSync(f('leaf.pem'), 'utf8'), keyPem: readFileSync(f('leaf.key'), 'utf8'),
  }
}
