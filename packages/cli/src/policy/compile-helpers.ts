/** Compiling expressions and templates inside action configs, with policy-error locations. */
import { compileExpression, compileTemplate, ExpressionError, type CompiledExpression, type Template } from './cel.js'
import type { ConfigReader } from './config-reader.js'
import type { PathSegment } from './source.js'

export function templateAt(reader: ConfigReader, path: readonly PathSegment[], text: string): Template {
  try {
    return compileTemplate(text)
  } catch (err) {
    if (err instanceof ExpressionError) throw reader.errorAt(path, `${err.message} (at character ${err.offset + 1} of the value)`, err.allowed)
    throw err
  }
}

export function expressionAt(reader: ConfigReader, path: readonly PathSegment[], text: string, expectBool: boolean): CompiledExpression {
  try {
    return compileExpression(text, expectBool)
  } catch (err) {
    if (err instanceof ExpressionError) {
      throw reader.errorAt(path, `invalid CEL expression ${JSON.stringify(text)}: ${err.message} (at character ${err.offset + 1})`, err.allowed)
    }
    throw err
  }
}

/** Header map config (`headers: {name: value}`), values interpolated. */
export function headerTemplates(reader: ConfigReader, key: string, required: boolean): Array<[string, Template]> {
  const out: Array<[string, Template]> = []
  for (const [name, value] of reader.stringMap(key, required)) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) reader.fail(key, `${JSON.stringify(name)} is not a valid header name`)
    out.push([name, templateAt(reader, [...reader.path, key, name], value)])
  }
  return out
}

export function regexAt(reader: ConfigReader, key: string, text: string): RegExp {
  try {
    return new RegExp(text)
  } catch (err) {
    reader.fail(key, `is not a valid regular expression: ${(err as Error).message}`)
  }
}
