/** The relay's ACME settings (`gw relay --acme-email …`); used by manager.ts. */
export interface AcmeOptions {
  /** Contact address for the ACME account; giving it agrees to the CA's terms of service. */
  email: string
  /** ACME directory URL. Default: Let's Encrypt's production directory. */
  directoryUrl?: string
  /** PEM of a CA to trust for the directory's HTTPS (a private ACME CA). */
  directoryCa?: string
  /** Challenges for single names, in order of preference. Default: http-01, then tls-alpn-01 (each only when its listener is on). */
  challenges?: Array<'http-01' | 'tls-alpn-01'>
  /** Command that sets and clears DNS-01 TXT records; turns on the wildcard certificate. */
  dnsHook?: string
  /** Orders (new and renewals) per rolling hour. Default 20. */
  ordersPerHour?: number
  /** Orders in flight at once. Default 4. */
  maxConcurrentOrders?: number
  /** How long a handshake waits for a certificate being issued, ms; then the default certificate. Default 10 s. */
  handshakeWait?: number
  /** How often certificates are checked for renewal, ms. Default 12 h. */
  renewCheckInterval?: number
  /** After a failed order, the host is not ordered again for this long, ms. Default 10 min. */
  failureBackoff?: number
}
