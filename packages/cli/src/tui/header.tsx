/**
 * The top of the TUI: status, relay, latency, version, the inspector's address and one
 * `public URL → upstream` line per tunnel. At most `maxTunnelLines` tunnel lines, so a
 * config with many endpoints still leaves room for the request list.
 */
import { Box, Text } from 'ink'
import type { AgentStatus } from '../agent/events.js'
import { fit } from './format.js'

export interface HeaderProps {
  status: AgentStatus
  apiUrl: string
  columns: number
  maxTunnelLines: number
}

function statusWord(status: AgentStatus): { text: string; color: string } {
  switch (status.status) {
    case 'online':
      return { text: 'online', color: 'green' }
    case 'reconnecting':
      return { text: `reconnecting (attempt ${status.attempt})`, color: 'yellow' }
    case 'connecting':
      return { text: 'connecting', color: 'yellow' }
    case 'offline':
      return { text: 'offline', color: 'red' }
  }
}

/** How many lines the header takes, so the list can have the rest. */
export function headerHeight(status: AgentStatus, maxTunnelLines: number): number {
  const tunnels = Math.min(status.tunnels.length, maxTunnelLines)
  const more = status.tunnels.length > maxTunnelLines ? 1 : 0
  return 2 + Math.max(1, tunnels + more) + (status.lastError !== undefined && status.status !== 'online' ? 1 : 0)
}

export function Header({ status, apiUrl, columns, maxTunnelLines }: HeaderProps) {
  const word = statusWord(status)
  const latency = status.latencyMs === undefined ? '-' : `${Math.round(status.latencyMs)}ms`
  const relay = status.embedded ? `${status.relay} (local only)` : status.relay
  const shown = status.tunnels.slice(0, maxTunnelLines)
  const hidden = status.tunnels.length - shown.length
  const width = columns - 1
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text bold color="cyan">gw</Text>
        <Text> {status.version}  </Text>
        <Text color={word.color} bold>● {word.text}</Text>
        <Text dimColor>  latency </Text>
        <Text>{latency}</Text>
        <Text dimColor>  relay </Text>
        <Text>{fit(relay, Math.max(10, width - 40 - word.text.length), false)}</Text>
      </Text>
      <Text wrap="truncate">
        <Text dimColor>Web Interface  </Text>
        <Text>{apiUrl}</Text>
        <Text dimColor>  (agent API {apiUrl}/api)</Text>
      </Text>
      {shown.length === 0 ? <Text dimColor>Forwarding     (no tunnel yet)</Text> : null}
      {shown.map((t) => (
        <Text key={t.name + t.publicUrl} wrap="truncate">
          <Text dimColor>Forwarding     </Text>
          <Text bold>{t.publicUrl}</Text>
          <Text> → </Text>
          <Text>{t.upstream}</Text>
          {t.inspect ? null : <Text dimColor> (not inspected)</Text>}
        </Text>
      ))}
      {hidden > 0 ? <Text dimColor>               … and {hidden} more (gw api: /api/tunnels)</Text> : null}
      {status.lastError !== undefined && status.status !== 'online' ? (
        <Text color="red" wrap="truncate">{fit(`${status.lastError.code}: ${status.lastError.message}`, width, false)}</Text>
      ) : null}
    </Box>
  )
}
