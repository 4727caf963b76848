/**
 * The traffic policy of one endpoint, from wherever the user wrote it: a policy file
 * (--policy-file), the CLI shorthands (--basic-auth, --rate-limit, --route…), or inline
 * under the endpoint in the config file. Shorthand rules run first, as ngrok's old
 * flags did, then the written policy.
 */
import { compilePolicy, readPolicyFile, shorthandsToPolicy, type CompiledPolicy, type EndpointKind, type PolicyShorthands } from './policy/index.js'
import type { AgentEvents } from './agent/events.js'
import type { SecretStore } from './policy/secrets.js'

type PolicyDoc = { on_http_request?: unknown[]; on_http_response?: unknown[]; on_tcp_connect?: unknown[]; [key: string]: unknown }

export interface EndpointPolicyInput {
  file?: string
  shorthands?: PolicyShorthands
  inline?: unknown
  upstreams?: Record<string, unknown>
  events: AgentEvents
  endpoint: string
  /** The vault for `secrets.get` (config/secrets-file.ts). */
  secrets?: SecretStore
  /** tcp and tls endpoints take on_tcp_connect, where the shorthands' rules (--cidr-allow…) go too. Default http. */
  kind?: EndpointKind
}

function asDoc(value: unknown): PolicyDoc {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as PolicyDoc) : {}
}

function hasRules(doc: PolicyDoc): boolean {
  return (doc.on_http_request?.length ?? 0) > 0 || (doc.on_http_response?.length ?? 0) > 0 || (doc.on_tcp_connect?.length ?? 0) > 0
}

/** The shorthands' rules: on_http_request for http, on_tcp_connect for a tcp or tls endpoint (only --cidr-allow/deny make sense there). */
function shorthandRules(input: { shorthands?: PolicyShorthands; kind?: EndpointKind }): PolicyDoc {
  const doc = asDoc(input.shorthands ? shorthandsToPolicy(input.shorthands) : {})
  if (input.kind === undefined || input.kind === 'http' || !doc.on_http_request) return doc
  const { on_http_request: rules, ...rest } = doc
  return { ...rest, on_tcp_connect: rules }
}

/** The effective policy document (what --print-policy shows). */
export function effectivePolicy(input: Omit<EndpointPolicyInput, 'events' | 'endpoint' | 'secrets'>): PolicyDoc {
  const fromFlags = shorthandRules(input)
  const written = input.file ? asDoc(readPolicyFile(input.file).value) : asDoc(input.inline)
  const merged: PolicyDoc = { ...written }
  for (const phase of ['on_http_request', 'on_http_response', 'on_tcp_connect'] as const) {
    const rules = [...(fromFlags[phase] ?? []), ...(written[phase] ?? [])]
    if (rules.length > 0) merged[phase] = rules
  }
  for (const [key, value] of Object.entries(fromFlags)) if (!(key in merged)) merged[key] = value
  return merged
}

/** Compile the endpoint's policy; undefined when it has none. Throws PolicyError with file:line:col. */
export function compileEndpointPolicy(input: EndpointPolicyInput): CompiledPolicy | undefined {
  const common = {
    events: input.events,
    endpoint: input.endpoint,
    ...(input.upstreams ? { upstreams: input.upstreams } : {}),
    ...(input.secrets ? { secrets: input.secrets } : {}),
    ...(input.kind ? { kind: input.kind } : {}),
  }
  const shorthandDoc = shorthandRules(input)
  if (input.file && !hasRules(shorthandDoc)) {
    // Compile the file as written, so errors point at its lines and columns.
    const { value, source } = readPolicyFile(input.file)
    return compilePolicy(value, { ...common, source })
  }
  if (input.file) {
    // Validate the file on its own first, for exact positions, then the merged document.
    const { value, source } = readPolicyFile(input.file)
    void compilePolicy(value, { ...common, source }).close()
  }
  const doc = effectivePolicy(input)
  if (!hasRules(doc) && !doc.upstreams) return undefined
  return compilePolicy(doc, common)
}
