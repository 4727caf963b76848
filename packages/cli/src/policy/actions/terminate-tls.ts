/**
 * `terminate-tls` in on_tcp_connect, as ngrok documents it: the agent ends the client's
 * TLS itself and passes plaintext to the upstream. gw's relay hands a tls endpoint's
 * connection through still encrypted (by SNI), and a tcp endpoint's bytes as they come,
 * so the agent is where TLS can end, with the certificate given here:
 *
 * - `server_certificate` and `server_private_key` (PEM, `${secrets.get(…)}` allowed): both
 *   required. ngrok falls back on the certificate it manages for the endpoint's domain;
 *   gw has none at the agent (the relay's key stays on the relay), so leaving them out is
 *   refused at load with that reason.
 * - `min_version` / `max_version`: `1.2` or `1.3` (default 1.2 and 1.3); other clients
 *   fail the handshake.
 * - `mutual_tls_certificate_authorities`: PEM CA certificates that client certificates must
 *   chain to; ngrok's `ca_…` ids name CAs kept in ngrok's cloud and are refused with that
 *   reason. `mutual_tls_verification_strategy`: `require-and-verify` (default), `require-any`
 *   (a certificate, unverified) or `request` (asked for; one that is given must verify).
 *
 * On an https endpoint the relay ends TLS, so there the action is what the agent asks the
 * relay to run (readHttpsTerminateTls, the engine's on_tcp_connect of an http policy).
 *
 * Not terminating: the runner records the termination on the state and the next actions
 * run; the agent does the handshake after the phase (agent/tcp-tls.ts), before dialling.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { MAX_TERMINATE_TLS_CA_BYTES, MAX_TERMINATE_TLS_CAS, type TerminateTlsRequest } from '@gw/protocol'
import type { ActionDefinition } from '../action.js'
import type { ConfigReader } from '../config-reader.js'
import { setActionResult, type TlsTermination } from '../state.js'

const VERSIONS = ['1.2', '1.3'] as const
const STRATEGIES = ['require-and-verify', 'require-any', 'request'] as const

/** What terminate-tls says of versions and client certificates, the same on tcp, tls and https endpoints. */
export interface TerminateTlsRules {
  min: '1.2' | '1.3'
  max: '1.2' | '1.3'
  strategy: typeof STRATEGIES[number]
  /** The CAs as given (PEM), and parsed. */
  ca: string[]
  caCerts: X509Certificate[]
}

export function readTerminateTlsRules(config: ConfigReader): TerminateTlsRules {
  const min = config.oneOf('min_version', VERSIONS, '1.2')
  const max = config.oneOf('max_version', VERSIONS, '1.3')
  if (min === '1.3' && max === '1.2') config.fail('max_version', 'must not be below min_version')
  const cas = config.stringList('mutual_tls_certificate_authorities', false)
  const strategy = config.oneOf('mutual_tls_verification_strategy', STRATEGIES, 'require-and-verify')
  const ca: string[] = []
  const caCerts: X509Certificate[] = []
  cas.forEach((text, i) => {
    const where = `mutual_tls_certificate_authorities[${i}]`
    if (/^ca_[A-Za-z0-9]+$/.test(text.trim())) {
      config.fail(where, `${JSON.stringify(text)} is a certificate authority kept in ngrok's cloud (its id); give the CA certificate's PEM instead`)
    }
    if (!text.includes('-----BEGIN CERTIFICATE-----')) config.fail(where, 'must be a PEM certificate (-----BEGIN CERTIFICATE-----)')
    let parsed: X509Certificate | undefined
    try {
      parsed = new X509Certificate(text)
    } catch (err) {
      config.fail(where, `is not a readable PEM certificate: ${(err as Error).message}`)
    }
    if (!parsed!.ca) config.fail(where, `is not a CA certificate (${parsed!.subject.replace(/\n/g, ', ')} has no CA basic constraint)`)
    ca.push(text)
    caCerts.push(parsed!)
  })
  return { min, max, strategy, ca, caCerts }
}

/**
 * terminate-tls on an https endpoint: the relay ends its TLS (with the relay's
 * certificate, as ngrok's cloud does with the one it manages), so the action becomes what
 * the agent asks the relay to run (EndpointRequest.terminateTls): the versions and the
 * client-certificate rules. A certificate of the endpoint's own would have to be handed
 * to the relay, and is refused.
 */
export function readHttpsTerminateTls(config: ConfigReader): TerminateTlsRequest {
  const rules = readTerminateTlsRules(config)
  for (const key of ['server_certificate', 'server_private_key']) {
    if (config.has(key)) {
      config.fail(key, "is not supported on an https endpoint: the relay ends its TLS with the relay's certificate (ngrok's cloud uses the one it manages for the domain); gw does not hand an endpoint's key to the relay. To end TLS with your own certificate, use a tls endpoint (gw tls) with terminate-tls, where the agent does the handshake")
    }
  }
  const cas = rules.ca.map((c) => c.trim())
  if (cas.length > MAX_TERMINATE_TLS_CAS) config.fail('mutual_tls_certificate_authorities', `lists ${cas.length} CAs; at most ${MAX_TERMINATE_TLS_CAS}`)
  if (cas.reduce((n, c) => n + c.length, 0) > MAX_TERMINATE_TLS_CA_BYTES) config.fail('mutual_tls_certificate_authorities', `takes more than ${MAX_TERMINATE_TLS_CA_BYTES} bytes of PEM`)
  config.done()
  return { minVersion: rules.min, maxVersion: rules.max, clientCas: cas, clientVerify: rules.strategy }
}

export const terminateTls: ActionDefinition = {
  type: 'terminate-tls',
  phases: ['on_tcp_connect'],
  compile(config) {
    const { min, max, strategy, ca, caCerts } = readTerminateTlsRules(config)
    const key = config.optString('server_private_key')
    const cert = config.optString('server_certificate')
    if (key === undefined || cert === undefined) {
      const missing = key === undefined && cert === undefined ? 'server_certificate and server_private_key' : key === undefined ? 'server_private_key' : 'server_certificate'
      config.fail(key === undefined && cert !== undefined ? 'server_private_key' : 'server_certificate',
        `terminate-tls needs ${missing} (PEM) in gw: ngrok uses the certificate it manages for the endpoint's domain, which lives in its cloud; gw's relay passes TLS through untouched and its own key stays on the relay, so the agent ends TLS only with a certificate you give (${'${secrets.get(…)}'} works); on an http endpoint (gw http) the relay runs terminate-tls with its own certificate, and there it needs none`)
    }
    try {
      createPrivateKey(key!)
    } catch (err) {
      config.fail('server_private_key', `is not a readable PEM private key: ${(err as Error).message}`)
    }
    let leaf: X509Certificate | undefined
    try {
      leaf = new X509Certificate(cert!)
    } catch (err) {
      config.fail('server_certificate', `is not a readable PEM certificate: ${(err as Error).message}`)
    }
    if (!leaf!.checkPrivateKey(createPrivateKey(key!))) config.fail('server_private_key', 'does not match server_certificate')
    const minVersion = min === '1.3' ? 'TLSv1.3' : 'TLSv1.2'
    const maxVersion = max === '1.3' ? 'TLSv1.3' : 'TLSv1.2'
    const secureContext = createSecureContext({ key: key!, cert: cert!, minVersion, maxVersion, ...(ca.length > 0 ? { ca } : {}) })
    const termination: TlsTermination = {
      secureContext,
      clientCertificate: ca.length === 0 ? 'none' : strategy,
      cas: caCerts,
    }
    config.done()
    return function terminateTlsAction(state) {
      state.terminateTls = termination
      setActionResult(state, 'ngrok', 'terminate_tls', { min_version: min, max_version: max })
    }
  },
}
