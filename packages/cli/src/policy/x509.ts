/**
 * What ngrok's `conn.tls.client.*` variables read from a client certificate, taken from
 * its DER: subject and issuer (each attribute, and the whole name written as Go's
 * `pkix.Name.String()` does, which ngrok shows: RFC 2253 order, `CN=…,O=…,C=…`), the
 * serial number (lower-case hex), Go's name of the signature algorithm, the validity,
 * the subject alternative names, and every extension (id, critical, value). Node's
 * X509Certificate has neither the extensions nor the signature algorithm, and gives
 * names as text to re-parse, hence this small reader of the one structure (RFC 5280 §4.1).
 * A certificate it cannot read yields undefined, and the variables read as empty.
 */

export interface CertName {
  /** Go's pkix.Name.String(): the RDNs last first, `CN=…,OU=…,O=…,C=…`. */
  text: string
  common_name: string
  country: string[]
  locality: string[]
  organization: string[]
  organizational_unit: string[]
  postal_code: string[]
  province: string[]
  street_address: string[]
}

export interface CertExtension {
  id: string
  critical: boolean
  value: Uint8Array
}

export interface ParsedCertificate {
  serial_number: string
  signature_algorithm: string
  issuer: CertName
  subject: CertName
  not_before: Date
  not_after: Date
  san: { dns_names: string[]; email_addresses: string[]; ip_addresses: string[]; uris: string[]; text: string }
  extensions: CertExtension[]
}

interface Tlv {
  tag: number
  /** Where the tag is. */
  at: number
  start: number
  end: number
}

class DerError extends Error {}

function tlv(buf: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new DerError('truncated')
  const tag = buf[at]!
  let len = buf[at + 1]!
  let start = at + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4 || start + n > limit) throw new DerError('bad length')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!
    start += n
  }
  const end = start + len
  if (end > limit) throw new DerError('truncated')
  return { tag, at, start, end }
}

function children(buf: Uint8Array, node: Tlv): Tlv[] {
  const out: Tlv[] = []
  for (let at = node.start; at < node.end;) {
    const child = tlv(buf, at, node.end)
    out.push(child)
    at = child.end
  }
  return out
}

function oid(buf: Uint8Array, node: Tlv): string {
  const arcs: number[] = []
  let value = 0
  for (let i = node.start; i < node.end; i++) {
    value = value * 128 + (buf[i]! & 0x7f)
    if (!(buf[i]! & 0x80)) {
      if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80)
      else arcs.push(value)
      value = 0
    }
  }
  return arcs.join('.')
}

function text(buf: Uint8Array, node: Tlv): string {
  const bytes = buf.subarray(node.start, node.end)
  switch (node.tag) {
    case 0x1e: { // BMPString, UTF-16BE
      let s = ''
      for (let i = 0; i + 1 < bytes.length; i += 2) s += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!)
      return s
    }
    case 0x14: // TeletexString: read as Latin-1, as Go does
      return Buffer.from(bytes).toString('latin1')
    default:
      return Buffer.from(bytes).toString('utf8')
  }
}

/** Go's short names in pkix.Name.String(); others are written `<oid>=#<hex of the DER value>`. */
const ATTRIBUTES: Record<string, { short: string; field?: keyof Omit<CertName, 'text' | 'common_name'> | 'common_name' }> = {
  '2.5.4.3': { short: 'CN', field: 'common_name' },
  '2.5.4.5': { short: 'SERIALNUMBER' },
  '2.5.4.6': { short: 'C', field: 'country' },
  '2.5.4.7': { short: 'L', field: 'locality' },
  '2.5.4.8': { short: 'ST', field: 'province' },
  '2.5.4.9': { short: 'STREET', field: 'street_address' },
  '2.5.4.10': { short: 'O', field: 'organization' },
  '2.5.4.11': { short: 'OU', field: 'organizational_unit' },
  '2.5.4.17': { short: 'POSTALCODE', field: 'postal_code' },
}

/** RFC 2253 §2.4 escaping, as Go's attributeTypeAndValue writes it. */
function escapeValue(v: string): string {
  let out = ''
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!
    if (',+"\\<>;'.includes(c) || (i === 0 && (c === ' ' || c === '#')) || (i === v.length - 1 && c === ' ')) out += `\\${c}`
    else out += c
  }
  return out
}

function name(buf: Uint8Array, node: Tlv): CertName {
  const n: CertName = { text: '', common_name: '', country: [], locality: [], organization: [], organizational_unit: [], postal_code: [], province: [], street_address: [] }
  const rdns: string[] = []
  for (const rdn of children(buf, node)) {
    const parts: string[] = []
    for (const atv of children(buf, rdn)) {
      const [type, value] = children(buf, atv)
      if (!type || !value) continue
      const id = oid(buf, type)
      const known = ATTRIBUTES[id]
      const v = text(buf, value)
      if (known?.field === 'common_name') n.common_name = v
      else if (known?.field) n[known.field].push(v)
      parts.push(known ? `${known.short}=${escapeValue(v)}` : `${id}=#${Buffer.from(buf.subarray(value.at, value.end)).toString('hex')}`)
    }
    rdns.push(parts.join('+'))
  }
  n.text = rdns.reverse().join(',')
  return n
}

function time(buf: Uint8Array, node: Tlv): Date {
  const s = Buffer.from(buf.subarray(node.start, node.end)).toString('latin1')
  // UTCTime YYMMDDHHMMSSZ (years 1950–2049, RFC 5280 §4.1.2.5.1); GeneralizedTime YYYYMMDDHHMMSSZ.
  const full = node.tag === 0x17 ? `${Number(s.slice(0, 2)) >= 50 ? '19' : '20'}${s}` : s
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(full)
  if (!m) throw new DerError('bad time')
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])))
}

/** Go's x509.SignatureAlgorithm names. */
const SIGNATURES: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'MD5-RSA',
  '1.2.840.113549.1.1.5': 'SHA1-RSA',
  '1.2.840.113549.1.1.11': 'SHA256-RSA',
  '1.2.840.113549.1.1.12': 'SHA384-RSA',
  '1.2.840.113549.1.1.13': 'SHA512-RSA',
  '1.2.840.10045.4.1': 'ECDSA-SHA1',
  '1.2.840.10045.4.3.2': 'ECDSA-SHA256',
  '1.2.840.10045.4.3.3': 'ECDSA-SHA384',
  '1.2.840.10045.4.3.4': 'ECDSA-SHA512',
  '1.3.101.112': 'Ed25519',
}
/** RSASSA-PSS: Go names it by its hash parameter. */
const PSS_HASHES: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'SHA256-RSAPSS',
  '2.16.840.1.101.3.4.2.2': 'SHA384-RSAPSS',
  '2.16.840.1.101.3.4.2.3': 'SHA512-RSAPSS',
}

function signatureName(buf: Uint8Array, algorithm: Tlv): string {
  const [id, params] = children(buf, algorithm)
  if (!id) return ''
  const o = oid(buf, id)
  if (o === '1.2.840.113549.1.1.10' && params && params.tag === 0x30) {
    // RSASSA-PSS-params: [0] hashAlgorithm AlgorithmIdentifier
    const hash = children(buf, params).find((c) => c.tag === 0xa0)
    const hashAlg = hash ? children(buf, hash)[0] : undefined
    const hashId = hashAlg ? children(buf, hashAlg)[0] : undefined
    return (hashId && PSS_HASHES[oid(buf, hashId)]) ?? 'SHA1-RSAPSS'
  }
  return SIGNATURES[o] ?? o
}

function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join('.')
  if (bytes.length !== 16) return Buffer.from(bytes).toString('hex')
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!)
  // The longest run of two or more zero groups becomes `::` (RFC 5952).
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best === -1) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

function subjectAltNames(buf: Uint8Array, value: Tlv, into: ParsedCertificate['san']): void {
  const seq = tlv(buf, value.start, value.end)
  const parts: string[] = []
  for (const g of children(buf, seq)) {
    const bytes = buf.subarray(g.start, g.end)
    const s = Buffer.from(bytes).toString('latin1')
    if (g.tag === 0x82) {
      into.dns_names.push(s)
      parts.push(`DNS:${s}`)
    } else if (g.tag === 0x81) {
      into.email_addresses.push(s)
      parts.push(`email:${s}`)
    } else if (g.tag === 0x86) {
      into.uris.push(s)
      parts.push(`URI:${s}`)
    } else if (g.tag === 0x87) {
      const ip = ipText(bytes)
      into.ip_addresses.push(ip)
      parts.push(`IP Address:${ip}`)
    }
  }
  into.text = parts.join(', ')
}

/** The certificate in a PEM text (the first one), or undefined when it cannot be read. */
export function parseCertificatePem(pem: string): ParsedCertificate | undefined {
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem)
  if (!m) return undefined
  try {
    return parseCertificate(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')))
  } catch (err) {
    if (err instanceof DerError) return undefined
    throw err
  }
}

export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const cert = tlv(der, 0, der.length)
  const [tbs, sigAlg] = children(der, cert)
  if (!tbs || !sigAlg || tbs.tag !== 0x30) throw new DerError('not a certificate')
  const fields = children(der, tbs)
  let i = fields[0]?.tag === 0xa0 ? 1 : 0
  const serial = fields[i++]
  i++ // the signature algorithm again, inside the signed part
  const issuer = fields[i++]
  const validity = fields[i++]
  const subject = fields[i++]
  if (!serial || !issuer || !validity || !subject || serial.tag !== 0x02) throw new DerError('not a certificate')
  const [notBefore, notAfter] = children(der, validity)
  if (!notBefore || !notAfter) throw new DerError('no validity')
  let serialHex = Buffer.from(der.subarray(serial.start, serial.end)).toString('hex').replace(/^(00)+(?=.)/, '')
  if (serialHex === '') serialHex = '0'
  const out: ParsedCertificate = {
    serial_number: serialHex.replace(/^0(?=.)/, ''),
    signature_algorithm: signatureName(der, sigAlg),
    issuer: name(der, issuer),
    subject: name(der, subject),
    not_before: time(der, notBefore),
    not_after: time(der, notAfter),
    san: { dns_names: [], email_addresses: [], ip_addresses: [], uris: [], text: '' },
    extensions: [],
  }
  const extWrapper = fields.find((f) => f.tag === 0xa3)
  if (extWrapper) {
    const list = tlv(der, extWrapper.start, extWrapper.end)
    for (const ext of children(der, list)) {
      const parts = children(der, ext)
      const id = parts[0] ? oid(der, parts[0]) : ''
      const critical = parts[1]?.tag === 0x01 ? der[parts[1].start] !== 0 : false
      const value = parts.find((p, k) => k > 0 && p.tag === 0x04)
      if (!value) continue
      out.extensions.push({ id, critical, value: der.slice(value.start, value.end) })
      if (id === '2.5.29.17') subjectAltNames(der, value, out.san)
    }
  }
  return out
}
