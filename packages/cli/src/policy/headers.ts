/** Helpers over flat raw header lists (`[name, value, …]`), case-insensitive by name. */

export function getHeader(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === lowerName) return raw[i + 1]
  }
  return undefined
}

export function getHeaderValues(raw: readonly string[], lowerName: string): string[] {
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === lowerName) out.push(raw[i + 1]!)
  }
  return out
}

export function hasHeader(raw: readonly string[], lowerName: string): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === lowerName) return true
  }
  return false
}

/** Remove every header whose lower-case name is in `names`, in place. */
export function removeHeaders(raw: string[], names: ReadonlySet<string>): void {
  let w = 0
  for (let i = 0; i < raw.length; i += 2) {
    if (names.has(raw[i]!.toLowerCase())) continue
    raw[w++] = raw[i]!
    raw[w++] = raw[i + 1]!
  }
  raw.length = w
}

/** Replace all values of a header with one value, keeping the position of the first. */
export function setHeader(raw: string[], name: string, value: string): void {
  const lower = name.toLowerCase()
  let found = -1
  let w = 0
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === lower) {
      if (found !== -1) continue
      found = w
    }
    raw[w++] = raw[i]!
    raw[w++] = raw[i + 1]!
  }
  raw.length = w
  if (found === -1) raw.push(name, value)
  else raw[found + 1] = value
}

/** Lower-case name → list of values, as ngrok exposes `req.headers`. */
export function headersToMap(raw: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const list = out[name]
    if (list) list.push(raw[i + 1]!)
    else out[name] = [raw[i + 1]!]
  }
  return out
}
