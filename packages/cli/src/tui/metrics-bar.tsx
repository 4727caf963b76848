/**
 * ngrok's `Connections ttl opn rt1 rt5 p50 p90` block, plus bytes in and out.
 * Durations in seconds with two decimals, as ngrok prints them.
 */
import { Box, Text } from 'ink'
import type { MetricsSnapshot } from '../inspect/metrics.js'
import { formatBytes } from '../inspect/timing.js'
import { rate, seconds } from './format.js'

export const METRICS_HEIGHT = 2

function cell(text: string, width: number): string {
  return text.length >= width ? text + ' ' : text + ' '.repeat(width - text.length)
}

export function MetricsBar({ metrics }: { metrics: MetricsSnapshot }) {
  const c = metrics.conns
  const h = metrics.http
  const head = ['ttl', 'opn', 'rt1', 'rt5', 'p50', 'p90', 'p99']
  const values = [String(h.count), String(c.gauge), rate(h.rate1), rate(h.rate5), seconds(h.p50), seconds(h.p90), seconds(h.p99)]
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text dimColor>Requests      </Text>
        <Text dimColor>{head.map((x) => cell(x, 7)).join('')}</Text>
        <Text dimColor>in      out</Text>
      </Text>
      <Text wrap="truncate">
        <Text>              </Text>
        <Text>{values.map((x) => cell(x, 7)).join('')}</Text>
        <Text>{cell(formatBytes(metrics.bytes.in), 8)}{formatBytes(metrics.bytes.out)}</Text>
      </Text>
    </Box>
  )
}
