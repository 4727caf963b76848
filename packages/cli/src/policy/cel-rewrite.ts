/**
 * Two things ngrok's CEL has that a CEL type checker cannot express directly, done by
 * rewriting the expression's source (guided by its parsed AST) before it is checked:
 *
 * - **Values that are a string with fields beside them.** In ngrok `req.url` is the URL
 *   string (`req.url.contains('/api')`) and `req.url.path` is one of its parts; the same
 *   holds for `req.user_agent`, `req.content_type` and a cookie from `getReqCookie()`.
 *   ngrok gets this from cel-go's qualified variable names; here each is a message type
 *   with a hidden string field, and a use that selects no field of it is rewritten to
 *   read that field: `req.url == x` becomes `req.url._gw_s == x`. A select is left alone
 *   even for an unknown field, so `req.url.pth` still fails as "No such key: pth".
 * - **`matches()` with RE2 semantics.** The CEL library's own `matches` is JavaScript's
 *   RegExp and cannot be replaced, so calls to it are renamed to `gwmatch`, gw's RE2
 *   overload (./re2.ts). The name has the same length, so offsets in errors stay true.
 *
 * Edits are recorded so an error's offset in the rewritten text maps back to the text
 * the user wrote.
 */

export const STRING_FIELD = '_gw_s'
export const MATCHES_ALIAS = 'gwmatch'

/** A node that is a string unless a field of it is selected. */
export interface StringLike {
  /** `req.url`: a select path; `getReqCookie`: a global call. */
  readonly path?: string
  readonly call?: string
  /** The field read when the node is used as a string (default: the hidden field). */
  readonly asString?: string
}

interface AstNode {
  op: string
  args: unknown
  start: number
  end: number
}

interface Edit {
  at: number
  remove: number
  insert: string
}

export interface Rewritten {
  readonly source: string
  /** Maps an offset in `source` back to the offset in the original text. */
  readonly originalOffset: (offset: number) => number
}

function isNode(v: unknown): v is AstNode {
  return typeof v === 'object' && v !== null && typeof (v as AstNode).op === 'string'
}

function pathOf(node: AstNode): string | undefined {
  if (node.op === 'id') return typeof node.args === 'string' ? node.args : undefined
  if (node.op === '.' && Array.isArray(node.args)) {
    const [target, field] = node.args as [unknown, unknown]
    const base = isNode(target) ? pathOf(target) : undefined
    return base !== undefined && typeof field === 'string' ? `${base}.${field}` : undefined
  }
  return undefined
}

/** The offset where the name of a method call `recv.name(args)` starts, found backwards from its `(`. */
function methodNameStart(source: string, node: AstNode, name: string): number | undefined {
  const args = (node.args as unknown[])[2] as unknown[]
  let i = isNode(args[0]) ? args[0].start : node.end - 1
  // Back over whitespace and opening parentheses (of the call and of a parenthesised argument).
  while (i > 0 && /[\s(]/.test(source[i - 1]!)) i--
  return source.slice(i - name.length, i) === name ? i - name.length : undefined
}

export function rewriteExpression(source: string, ast: unknown, stringLikes: readonly StringLike[]): Rewritten {
  const edits: Edit[] = []

  function stringLikeOf(node: AstNode): StringLike | undefined {
    if (node.op === '.') {
      const p = pathOf(node)
      return p === undefined ? undefined : stringLikes.find((s) => s.path === p)
    }
    if (node.op === 'call') {
      const name = (node.args as unknown[])[0]
      return stringLikes.find((s) => s.call !== undefined && s.call === name)
    }
    return undefined
  }

  function visit(node: AstNode, parent: AstNode | undefined): void {
    const like = stringLikeOf(node)
    if (like) {
      const selected = parent?.op === '.' && (parent.args as unknown[])[0] === node
      if (!selected) edits.push({ at: node.end, remove: 0, insert: `.${like.asString ?? STRING_FIELD}` })
    }
    if (node.op === 'rcall' && (node.args as unknown[])[0] === 'matches') {
      const at = methodNameStart(source, node, 'matches')
      if (at !== undefined) edits.push({ at, remove: 'matches'.length, insert: MATCHES_ALIAS })
    } else if (node.op === 'call' && (node.args as unknown[])[0] === 'matches' && source.startsWith('matches', node.start)) {
      edits.push({ at: node.start, remove: 'matches'.length, insert: MATCHES_ALIAS })
    }
    walk(node.args, node)
  }

  function walk(value: unknown, parent: AstNode): void {
    if (isNode(value)) visit(value, parent)
    else if (Array.isArray(value)) for (const v of value) walk(v, parent)
  }

  if (isNode(ast)) visit(ast, undefined)
  if (edits.length === 0) return { source, originalOffset: (o) => o }
  edits.sort((a, b) => a.at - b.at)
  let out = ''
  let last = 0
  for (const e of edits) {
    out += source.slice(last, e.at) + e.insert
    last = e.at + e.remove
  }
  out += source.slice(last)
  return {
    source: out,
    originalOffset(offset: number): number {
      let shift = 0
      for (const e of edits) {
        const newAt = e.at + shift
        if (offset < newAt) break
        const grow = e.insert.length - e.remove
        // Inside an insertion: point at where it was inserted.
        if (offset < newAt + e.insert.length && grow > 0) return e.at
        shift += grow
      }
      return offset - shift
    },
  }
}

/** Error text in the rewritten source's names, put back into the user's. */
export function originalMessage(message: string): string {
  return message.split(MATCHES_ALIAS).join('matches').split(`.${STRING_FIELD}`).join('')
}
