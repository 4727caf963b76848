/**
 * Finding the OpenAPI 3 operation for a request: path templates (`/orders/{id}`) become
 * anchored regexes, literal paths win over templated ones, as OpenAPI §4.8.8 says.
 */
export interface OpenApiOperation {
  method: string
  template: string
  regex: RegExp
  paramNames: string[]
  literalScore: number
  operation: Record<string, unknown>
  pathItem: Record<string, unknown>
  /** JSON pointer of the operation inside the document, for $ref-based compilation. */
  pointer: string
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

export function indexOperations(doc: Record<string, unknown>): OpenApiOperation[] {
  const paths = (doc.paths ?? {}) as Record<string, Record<string, unknown>>
  const out: OpenApiOperation[] = []
  for (const [template, item] of Object.entries(paths)) {
    if (!item || typeof item !== 'object') continue
    const names: string[] = []
    const source = template.split(/(\{[^}]+\})/).map((part) => {
      const m = /^\{([^}]+)\}$/.exec(part)
      if (m) {
        names.push(m[1]!)
        return '([^/]+)'
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    }).join('')
    for (const method of METHODS) {
      const op = item[method]
      if (!op || typeof op !== 'object') continue
      out.push({
        method: method.toUpperCase(), template, regex: new RegExp(`^${source}$`), paramNames: names,
        literalScore: template.replace(/\{[^}]+\}/g, '').length, operation: op as Record<string, unknown>, pathItem: item,
        pointer: `#/paths/${escapePointer(template)}/${method}`,
      })
    }
  }
  // Most literal characters first, so /orders/mine beats /orders/{id}.
  return out.sort((a, b) => b.literalScore - a.literalScore)
}

export function matchOperation(ops: readonly OpenApiOperation[], method: string, path: string): { op: OpenApiOperation; params: Record<string, string> } | undefined {
  for (const op of ops) {
    if (op.method !== method) continue
    const m = op.regex.exec(path)
    if (!m) continue
    const params: Record<string, string> = {}
    op.paramNames.forEach((n, i) => {
      try {
        params[n] = decodeURIComponent(m[i + 1]!)
      } catch {
        params[n] = m[i + 1]!
      }
    })
    return { op, params }
  }
  return undefined
}

/**
 * The path prefixes of the document's `servers` (`https://api.example.com/v1` → `/v1`),
 * longest first; operations' paths are relative to them. A server without a path, or no
 * servers at all, gives ''. Servers with variables (`/{version}`) are skipped.
 */
export function serverBasePaths(doc: Record<string, unknown>): string[] {
  const out = new Set<string>()
  for (const server of (Array.isArray(doc.servers) ? doc.servers : []) as Array<{ url?: unknown }>) {
    if (typeof server?.url !== 'string' || server.url.includes('{')) continue
    try {
      out.add(new URL(server.url, 'http://base.invalid').pathname.replace(/\/+$/, ''))
    } catch {
      // not a URL
    }
  }
  if (out.size === 0) out.add('')
  return [...out].sort((a, b) => b.length - a.length)
}
