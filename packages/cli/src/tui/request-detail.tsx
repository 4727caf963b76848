/**
 * One request in full, scrolled by ↑↓/PgUp/PgDn. Exactly `height` lines.
 */
import { Box, Text } from 'ink'
import type { DetailLine } from './detail-lines.js'
import { fit } from './format.js'

export interface RequestDetailProps {
  lines: DetailLine[]
  scroll: number
  columns: number
  height: number
}

export function RequestDetail({ lines, scroll, columns, height }: RequestDetailProps) {
  const body = Math.max(1, height - 1)
  const first = Math.max(0, Math.min(scroll, Math.max(0, lines.length - body)))
  const view = lines.slice(first, first + body)
  const more = lines.length > body ? `lines ${first + 1}-${first + view.length} of ${lines.length}` : ''
  return (
    <Box flexDirection="column" height={height}>
      {view.map((line, i) => (
        <Text key={first + i} wrap="truncate" bold={line.bold ?? false} dimColor={line.dim ?? false} {...(line.color ? { color: line.color } : {})}>
          {fit(line.text, columns - 1, false)}
        </Text>
      ))}
      <Text dimColor wrap="truncate">{more}</Text>
    </Box>
  )
}
