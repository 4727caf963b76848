/**
 * The last line: the filter being typed, a message after an action (replayed, cleared,
 * failed), or the keys that work in the current view.
 */
import { Text } from 'ink'

export interface FooterProps {
  /** False when stdin is not a terminal: no keys can be read. */
  keys?: boolean
  view: 'list' | 'detail'
  filter: string
  editingFilter: boolean
  flash: { text: string; color: string } | undefined
  columns: number
}

export function Footer({ view, filter, editingFilter, flash, keys: keysOn = true }: FooterProps) {
  if (editingFilter) {
    return (
      <Text wrap="truncate">
        <Text color="cyan">filter /</Text>
        <Text>{filter}</Text>
        <Text inverse> </Text>
        <Text dimColor>  method, status (404, 4xx) or path · Enter apply · Esc clear</Text>
      </Text>
    )
  }
  if (flash !== undefined) return <Text color={flash.color} wrap="truncate">{flash.text}</Text>
  if (!keysOn) return <Text dimColor wrap="truncate">stdin is not a terminal: keys are off · Ctrl-C to stop</Text>
  const keys =
    view === 'list'
      ? '↑↓ PgUp PgDn select · Enter detail · r replay · / filter · c clear · q quit'
      : '↑↓ PgUp PgDn scroll · Esc back · r replay · q quit'
  return (
    <Text wrap="truncate">
      {filter !== '' ? <Text color="cyan">filter: {filter}  </Text> : null}
      <Text dimColor>{keys}</Text>
    </Text>
  )
}
