/** The config file's shape (ngrok's v3), shared by the reader and the v2 translation. */
export interface EndpointConfig {
  name: string
  url?: string
  upstream: { url: string | number; protocol?: string }
  traffic_policy?: unknown
  host_header?: string
  /** Capture this endpoint's requests (a v2 tunnel's `inspect`). */
  inspect?: boolean
  /** ngrok's `pooling_enabled`. */
  pooling_enabled?: boolean
  /** gw's `relay_cache`: the relay may answer from its shared HTTP cache. */
  relay_cache?: boolean
  /** ngrok's `bindings`: gw serves `public` only. */
  bindings?: string[]
}

export interface AgentConfig {
  version?: number | string
  agent?: {
    authtoken?: string
    connect_url?: string
    relay_ca?: string
    web_addr?: string | false
    /** ngrok's `log`: stdout, stderr, false or a file path. */
    log?: string
    inspect_db_size?: number
  }
  endpoints?: EndpointConfig[]
  upstreams?: Record<string, unknown>
  /** ngrok's older `tunnels:` map; loadConfig folds it into `endpoints`. */
  tunnels?: unknown
}
