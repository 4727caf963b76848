/**
 * Request headers through which the policy tells the upstream who the user is (the
 * oidc action's `X-Gw-Oidc-Sub`, `-Email`, `-Name`). The upstream trusts them, so a
 * client must not be able to send them: the agent strips every header with this prefix
 * from the client's request before the request phase runs.
 */
export const IDENTITY_HEADER_PREFIX = 'x-gw-oidc-'

export function isIdentityHeader(name: string): boolean {
  return name.length > IDENTITY_HEADER_PREFIX.length && name.slice(0, IDENTITY_HEADER_PREFIX.length).toLowerCase() === IDENTITY_HEADER_PREFIX
}
