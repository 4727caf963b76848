/**
 * JSON ↔ XML on fast-xml-parser, with the conventions transform-body and soap share:
 * attributes are `@_name` keys, text next to attributes or children is `#text`,
 * repeated elements are arrays. Parsing never resolves external entities (fast-xml-parser
 * does not support DTD entities beyond the built-in ones), so XXE is not a concern.
 */
import { XMLBuilder, XMLParser } from 'fast-xml-parser'

const NAME = /^[A-Za-z_][\w.-]*(:[A-Za-z_][\w.-]*)?$/

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', textNodeName: '#text', suppressEmptyNode: false })

function checkNames(value: unknown, path: string): void {
  if (Array.isArray(value)) value.forEach((v, i) => checkNames(v, `${path}[${i}]`))
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k !== '#text' && !k.startsWith('@_') && !NAME.test(k)) throw new Error(`${path}.${k}: ${JSON.stringify(k)} is not a valid XML element name`)
      checkNames(v, `${path}.${k}`)
    }
  }
}

/**
 * JSON → XML text, wrapped in a `root` element when one is given. Without one, a
 * single-key object names the root element itself and anything else is wrapped in `root`.
 */
export function jsonToXml(value: unknown, root?: string): string {
  let doc: Record<string, unknown>
  if (root === undefined && value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1 && !Object.keys(value)[0]!.startsWith('@_')) {
    doc = value as Record<string, unknown>
  } else if (Array.isArray(value)) doc = { [root ?? 'root']: { item: value } }
  else doc = { [root ?? 'root']: value }
  checkNames(doc, '$')
  return `<?xml version="1.0" encoding="UTF-8"?>${builder.build(doc) as string}`
}

/** XML content (no declaration) for elements inside an envelope. */
export function jsonToXmlFragment(value: unknown): string {
  checkNames(value, '$')
  return builder.build(value) as string
}

export function xmlToJson(text: string, options: { removeNSPrefix?: boolean } = {}): Record<string, unknown> {
  const parser = new XMLParser({
    ignoreAttributes: false, attributeNamePrefix: '@_', textNodeName: '#text', parseTagValue: true,
    parseAttributeValue: false, removeNSPrefix: options.removeNSPrefix ?? false, processEntities: true, ignoreDeclaration: true,
  })
  const out = parser.parse(text, true) as Record<string, unknown> | undefined
  return out ?? {}
}

export function isXmlType(contentType: string): boolean {
  return /^(application|text)\/([\w.+-]+\+)?xml\b/i.test(contentType)
}

export function isJsonType(contentType: string): boolean {
  return /^application\/([\w.+-]+\+)?json\b/i.test(contentType)
}
