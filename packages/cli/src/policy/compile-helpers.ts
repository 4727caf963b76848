/** Compiling expressions and templates inside action configs, with policy-error locations. */
import { compileExpression, compileTemplate, ExpressionError, type CompiledExpression, type ExtraVariables, type Template } from './cel.js'
import type { ConfigReader } from './config-reader.js'
import type { PathSegment } from './source.js'
import { compileRe2, Re2SyntaxError } from './re2.js'
import type { RE2JS } from 're2js'
import type { EvalRoot } from './variables.js'

export function templateAt(reader: ConfigReader, path: readonly PathSegment[], text: string): Template {
  try {
    return compileTemplate(text)
  } catch (err) {
    if (err instanceof ExpressionError) throw reader.errorAt(path, `${err.message} (at character ${err.offset + 1} of the value)`, err.allowed)
    throw err
  }
}

export function expressionAt(reader: ConfigReader, path: readonly PathSegment[], text: string, expectBool: boolean, extra?: ExtraVariables): CompiledExpression {
  try {
    return compileExpression(text, expectBool, extra)
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
  for (const [name, value] of reader.templateMap(key, required)) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) reader.fail(key, `${JSON.stringify(name)} is not a valid header name`)
    out.push([name, templateAt(reader, [...reader.path, key, name], value)])
  }
  return out
}

/**
 * A regular expression field (`from` of url-rewrite and redirect): RE2, as in ngrok, and
 * `${…}` interpolation is allowed in it as ngrok allows it. Without `${` it is compiled
 * once here, so a bad pattern fails at load; with it, the pattern is built per request
 * and a request whose interpolated pattern is not valid RE2 gets `undefined` (the action
 * does nothing).
 */
export function patternAt(reader: ConfigReader, key: string, text: string): (root: EvalRoot) => RE2JS | undefined {
  if (!text.includes('${')) {
    let re: RE2JS
    try {
      re = compileRe2(text)
    } catch (err) {
      if (err instanceof Re2SyntaxError) reader.fail(key, `is not a valid regular expression: ${err.message}`)
      throw err
    }
    return () => re
  }
  const template = templateAt(reader, reader.at(key), text)
  return function interpolatedPattern(root: EvalRoot): RE2JS | undefined {
    try {
      return compileRe2(template(root))
    } catch (err) {
      if (err instanceof Re2SyntaxError) return undefined
      throw err
    }
  }
}
