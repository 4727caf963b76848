/**
 * The last line: the filter being typed, a message after an action (replayed, cleared,
 * failed), or the keys that work in the current view.
 */
import { Text } from 'ink'

export interface FooterProps {
  view: 'list' | 'detail'
  filter: string
  editingFilter: boolean
  flash: { text: string; color: string } | undefined
  columns: number
}

export function Footer({ view, filter, editingFilter, flash }: FooterProps) {
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
