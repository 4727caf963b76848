/**
 * Request headers through which the policy tells the upstream who the user is (the
 * oidc action's `X-Gw-Oidc-Sub`, `-Email`, `-Name`). The upstream trusts them, so a
 * client must not be able to send them: the agent strips every header with this prefix
 * from the client's request before the request phase runs.
 */
export const IDENTITY_HEADER_PREFIX = 'x-gw-oidc-'

export function isIdentityHeader(name: string): boolean {
  // Most headers fail on the first two characters, without a slice or a lower-case copy.
  return name.length > IDENTITY_HEADER_PREFIX.length && (name.charCodeAt(0) | 0x20) === 0x78 && name.charCodeAt(1) === 0x2d &&
    name.slice(0, IDENTITY_HEADER_PREFIX.length).toLowerCase() === IDENTITY_HEADER_PREFIX
}
