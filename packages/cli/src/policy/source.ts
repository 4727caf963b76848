/**
 * Reading a policy document (YAML or JSON; JSON is YAML) while keeping where every node
 * came from, so a validation error can name the file, line and column. The `yaml`
 * package's CST keeps ranges; `locate()` walks it by the same path the validator walks
 * the plain value.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml'
import { PolicyError } from './errors.js'

export type PathSegment = string | number

export interface PolicySource {
  /** The file name for messages; undefined for inline or generated policies. */
  file: string | undefined
  /** 1-based line and column of the node at `path`, or of its nearest existing parent. */
  locate(path: readonly PathSegment[]): { line: number; col: number } | undefined
}

export interface ParsedPolicyText {
  value: unknown
  source: PolicySource
}

export function formatPath(path: readonly PathSegment[]): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else out += out ? `.${seg}` : seg
  }
  return out || '(document)'
}

export function parsePolicyText(text: string, file: string | undefined): ParsedPolicyText {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true })
  const first = doc.errors[0]
  if (first) {
    const pos = lineCounter.linePos(first.pos[0])
    throw new PolicyError(
      'GW_ERR_POLICY_FILE',
      `not valid YAML or JSON: ${first.message.split('\n')[0]}`,
      { file, line: pos.line, col: pos.col, path: '(document)' },
    )
  }
  const root = doc.contents as Node | null
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    // What parses but does not resolve: an alias to no anchor (`*a`), or more aliases
    // than the cap that stops an alias bomb. The yaml package throws plain errors here.
    throw new PolicyError('GW_ERR_POLICY_FILE', `not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`, { file, line: 1, col: 1, path: '(document)' })
  }
  return {
    value,
    source: {
      file,
      locate(path) {
        let node: unknown = root
        let best: unknown = root
        for (const seg of path) {
          let next: unknown
          if (isMap(node)) {
            const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg)
            // A key with an empty value points at the key itself.
            next = pair ? (pair.value ?? pair.key) : undefined
          } else if (isSeq(node) && typeof seg === 'number') {
            next = node.items[seg]
          }
          if (next === undefined || next === null) break
          node = next
          best = next
        }
        const range = (best as { range?: [number, number, number] } | null)?.range
        if (!range) return undefined
        const pos = lineCounter.linePos(range[0])
        return { line: pos.line, col: pos.col }
      },
    },
  }
}

export const NO_SOURCE: PolicySource = { file: undefined, locate: () => undefined }
