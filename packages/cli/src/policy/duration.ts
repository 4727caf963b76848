/**
 * Durations as ngrok writes them (`60s`, `1m30s`, `500ms`, `2h`), in Go's
 * time.ParseDuration spelling, because ngrok policies are copied into gw as they are.
 */
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)/y

/** Milliseconds, or undefined when the text is not a duration. A bare number is seconds. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined
  if (typeof value !== 'string' || value.length === 0) return undefined
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000
  let total = 0
  PART.lastIndex = 0
  while (PART.lastIndex < value.length) {
    const start = PART.lastIndex
    const m = PART.exec(value)
    if (!m || m.index !== start) return undefined
    total += Number(m[1]) * UNIT_MS[m[2]!]!
  }
  return total
}
