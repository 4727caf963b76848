/**
 * The live request list, newest first: time, method, path, status coloured by class,
 * duration, size, and a note for policy verdicts, replays, errors and WebSockets.
 * It draws exactly `height` lines so the screen never scrolls.
 */
import { Box, Text } from 'ink'
import type { CaptureRecord } from '../inspect/capture.js'
import { fit, rowText, rowWidths } from './format.js'

export interface RequestListProps {
  /** The rows in view, already windowed. */
  records: CaptureRecord[]
  selectedId: string | undefined
  columns: number
  height: number
  /** Shown when `records` is empty. */
  empty: string
}

export function RequestList({ records, selectedId, columns, height, empty }: RequestListProps) {
  const w = rowWidths(columns)
  const title =
    `${fit('time', w.time)} ${fit('method', w.method)} ${fit('path', w.path)} ${fit('sts', w.status)} ` +
    `${fit('dur', w.duration)} ${fit('size', w.size)}${w.note > 0 ? ' ' + fit('note', w.note) : ''}`
  const rows = records.slice(0, Math.max(0, height - 1))
  return (
    <Box flexDirection="column" height={height}>
      <Text dimColor wrap="truncate">{title}</Text>
      {rows.length === 0 ? <Text dimColor wrap="truncate">{empty}</Text> : null}
      {rows.map((record) => {
        const r = rowText(record)
        const selected = record.id === selectedId
        return (
          <Text key={record.id} inverse={selected} wrap="truncate">
            <Text dimColor={!selected}>{fit(r.time, w.time)} </Text>
            <Text bold>{fit(r.method, w.method)} </Text>
            <Text>{fit(r.path, w.path)} </Text>
            <Text color={r.statusColor} bold>{fit(r.status, w.status)} </Text>
            <Text>{fit(r.duration, w.duration)} </Text>
            <Text dimColor={!selected}>{fit(r.size, w.size)}</Text>
            {w.note > 0 ? <Text color={r.noteColor}> {fit(r.note, w.note)}</Text> : null}
          </Text>
        )
      })}
    </Box>
  )
}
