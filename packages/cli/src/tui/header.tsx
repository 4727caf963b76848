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

/** One line per public URL (http and https of one tunnel are two), as ngrok prints them. */
function forwardingLines(status: AgentStatus): { key: string; url: string; upstream: string; inspect: boolean }[] {
  const out: { key: string; url: string; upstream: string; inspect: boolean }[] = []
  for (const t of status.tunnels) {
    const urls = t.publicUrls.length > 0 ? t.publicUrls : [t.publicUrl]
    for (const url of urls) out.push({ key: `${t.name} ${url}`, url, upstream: t.upstream, inspect: t.inspect })
  }
  return out
}

/** How many lines the header takes, so the list can have the rest. */
export function headerHeight(status: AgentStatus, maxTunnelLines: number): number {
  const lines = forwardingLines(status).length
  const shown = Math.min(lines, maxTunnelLines)
  const more = lines > maxTunnelLines ? 1 : 0
  return 3 + Math.max(1, shown + more) + (status.lastError !== undefined && status.status !== 'online' ? 1 : 0)
}

export function Header({ status, apiUrl, columns, maxTunnelLines }: HeaderProps) {
  const word = statusWord(status)
  const latency = status.latencyMs === undefined ? '-' : `${Math.round(status.latencyMs)}ms`
  const all = forwardingLines(status)
  const shown = all.slice(0, maxTunnelLines)
  const hidden = all.length - shown.length
  const width = columns - 1
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text bold color="cyan">gw</Text>
        <Text> {status.version}  </Text>
        <Text color={word.color} bold>● {word.text}</Text>
        <Text dimColor>  latency </Text>
        <Text>{latency}</Text>
      </Text>
      <Text wrap="truncate">
        <Text dimColor>Relay         </Text>
        <Text>{status.relay}</Text>
        {status.embedded ? <Text color="yellow"> (local only: --relay to share)</Text> : null}
      </Text>
      <Text wrap="truncate">
        <Text dimColor>Web Interface </Text>
        <Text>{apiUrl === '' ? '(off)' : apiUrl}</Text>
      </Text>
      {shown.length === 0 ? <Text dimColor>Forwarding    (no tunnel yet)</Text> : null}
      {shown.map((t) => (
        <Text key={t.key} wrap="truncate">
          <Text dimColor>Forwarding    </Text>
          <Text bold>{t.url}</Text>
          <Text> → </Text>
          <Text>{t.upstream}</Text>
          {t.inspect ? null : <Text dimColor> (not inspected)</Text>}
        </Text>
      ))}
      {hidden > 0 ? <Text dimColor>              … and {hidden} more (see /api/tunnels)</Text> : null}
      {status.lastError !== undefined && status.status !== 'online' ? (
        <Text color="red" wrap="truncate">{fit(`${status.lastError.code}: ${status.lastError.message}`, width, false)}</Text>
      ) : null}
    </Box>
  )
}
