/**
 * `validate-request` (gw's): check a request before it reaches the upstream, with ajv.
 *
 * Either JSON Schemas (`body_schema`, `query_schema`, `headers_schema`), or an OpenAPI
 * 3 document (`openapi: {file: api.yml}` or inline `openapi: {document: {...}}`): the
 * operation is found by method and path, and its path, query and header parameters and
 * its JSON request body are checked. A request that fails gets 400 with the list of what
 * failed (`[{in, path, message}]`) and never reaches the upstream; a path or method the
 * document does not describe gets 404/405 unless `allow_unknown_operations: true`.
 * Every schema is compiled once, when the policy loads.
 */
import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { parse as parseYaml } from 'yaml'
import { respondJson, type ActionDefinition } from '../action.js'
import { bufferRequestBody, DEFAULT_BODY_LIMIT, tooLarge } from '../body.js'
import { getHeader, headersToMap } from '../headers.js'
import { indexOperations, matchOperation, serverBasePaths, type OpenApiOperation } from '../openapi.js'
import { setActionResult } from '../state.js'

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv

interface Problem { in: string; path: string; message: string }

interface OperationValidators {
  params: ValidateFunction | undefined
  query: ValidateFunction | undefined
  headers: ValidateFunction | undefined
  body: ValidateFunction | undefined
  bodyRequired: boolean
}

function createAjv(coerce: boolean): Ajv {
  // strict: false because OpenAPI documents carry keywords JSON Schema does not know
  // (nullable, example, xml, discriminator…).
  const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: coerce ? 'array' : false, useDefaults: false })
  addFormats(ajv)
  return ajv
}

function toProblems(where: string, errors: ErrorObject[] | null | undefined): Problem[] {
  return (errors ?? []).map((e) => {
    let path = e.instancePath
    if (e.keyword === 'required') path += `/${(e.params as { missingProperty: string }).missingProperty}`
    if (e.keyword === 'additionalProperties') path += `/${(e.params as { additionalProperty: string }).additionalProperty}`
    return { in: where, path: path || '/', message: e.message ?? e.keyword }
  })
}

function paramSchema(params: Array<Record<string, unknown>>, where: string, lowerNames = false): Record<string, unknown> | undefined {
  const list = params.filter((p) => p.in === where)
  if (list.length === 0) return undefined
  const properties: Record<string, unknown> = {}
  const required: string[] = []
  for (const p of list) {
    const name = lowerNames ? String(p.name).toLowerCase() : String(p.name)
    properties[name] = p.schema ?? {}
    if (p.required || where === 'path') required.push(name)
  }
  return { type: 'object', properties, required }
}

/** Resolve a `$ref` to a parameter object inside the document. */
function deref(doc: Record<string, unknown>, value: unknown): Record<string, unknown> {
  let v = value as Record<string, unknown>
  for (let i = 0; i < 10 && v && typeof v.$ref === 'string'; i++) {
    const parts = (v.$ref as string).replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    let cur: unknown = doc
    for (const p of parts) cur = (cur as Record<string, unknown> | undefined)?.[p]
    v = cur as Record<string, unknown>
  }
  return v ?? {}
}

export const validateRequest: ActionDefinition = {
  type: 'validate-request',
  phases: ['on_http_request'],
  compile(config) {
    const limit = config.int('max_body_size', DEFAULT_BODY_LIMIT, 1, 64 * 1024 * 1024)
    const allowUnknown = config.bool('allow_unknown_operations', false)
    const plain = createAjv(false)
    const coercing = createAjv(true)
    const compileAt = (ajv: Ajv, key: string, schema: unknown): ValidateFunction | undefined => {
      if (schema === undefined || schema === null) return undefined
      try {
        return ajv.compile(schema as object)
      } catch (err) {
        config.fail(key, `is not a valid JSON Schema: ${(err as Error).message}`)
      }
    }
    let fixed: OperationValidators | undefined
    let basePaths: string[] = ['']
    let ops: Array<{ op: OpenApiOperation; v: OperationValidators }> | undefined
    if (config.has('openapi')) {
      const oa = config.child('openapi', true)
      let doc: Record<string, unknown> = {}
      if (oa.has('file')) {
        const file = oa.string('file')
        try {
          doc = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>
        } catch (err) {
          oa.fail('file', `cannot read the OpenAPI document ${file}: ${(err as Error).message}`)
        }
      } else if (oa.has('document')) doc = oa.raw('document') as Record<string, unknown>
      else oa.fail(undefined, 'needs file (a path to an OpenAPI 3 document) or document (inline)')
      oa.done()
      if (typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.')) oa.fail(undefined, 'is not an OpenAPI 3 document (no openapi: 3.x field)')
      basePaths = serverBasePaths(doc)
      const docId = 'gw-openapi'
      plain.addSchema(doc as object, docId)
      coercing.addSchema(doc as object, docId)
      ops = indexOperations(doc).map((op) => {
        const params = [...((op.pathItem.parameters as unknown[]) ?? []), ...((op.operation.parameters as unknown[]) ?? [])].map((p) => deref(doc, p))
        const body = deref(doc, op.operation.requestBody)
        const json = (body.content as Record<string, { schema?: unknown }> | undefined)?.['application/json']
        const wrap = (schema: Record<string, unknown> | undefined, ajv: Ajv): ValidateFunction | undefined => {
          if (!schema) return undefined
          try {
            // References are rebased onto the registered document so `#/components/...` resolve.
            return ajv.compile(rebase(schema, docId))
          } catch (err) {
            throw oa.errorAt(oa.path, `operation ${op.method} ${op.template}: ${(err as Error).message}`)
          }
        }
        const bodyValidator = wrap(json?.schema as Record<string, unknown> | undefined, plain)
        return {
          op,
          v: {
            params: wrap(paramSchema(params, 'path'), coercing),
            query: wrap(paramSchema(params, 'query'), coercing),
            headers: wrap(paramSchema(params, 'header', true), coercing),
            body: bodyValidator,
            bodyRequired: body.required === true,
          },
        }
      })
    } else {
      fixed = {
        params: undefined,
        query: compileAt(coercing, 'query_schema', config.raw('query_schema')),
        headers: compileAt(coercing, 'headers_schema', config.raw('headers_schema')),
        body: compileAt(plain, 'body_schema', config.raw('body_schema') ?? config.raw('schema')),
        bodyRequired: config.bool('body_required', false),
      }
      if (!fixed.query && !fixed.headers && !fixed.body) config.fail(undefined, 'needs openapi, body_schema, query_schema or headers_schema')
    }
    config.done()
    const opIndex = ops ? ops.map((o) => o.op) : []

    return async function validateRequestAction(state) {
      const req = state.request!
      const q = req.target.indexOf('?')
      const rawPath = q === -1 ? req.target : req.target.slice(0, q)
      let validators = fixed
      let pathParams: Record<string, string> = {}
      if (ops) {
        let found: ReturnType<typeof matchOperation>
        for (const base of basePaths) {
          if (base && rawPath !== base && !rawPath.startsWith(`${base}/`)) continue
          found = matchOperation(opIndex, req.method.toUpperCase(), rawPath.slice(base.length) || '/')
          if (found) break
        }
        if (!found) {
          if (allowUnknown) return
          const pathKnown = basePaths.some((b) => (!b || rawPath.startsWith(`${b}/`)) && opIndex.some((o) => o.regex.test(rawPath.slice(b.length))))
          setActionResult(state, 'gw', 'validate_request', { valid: false, errors: [] })
          return respondJson(pathKnown ? 405 : 404, { error: pathKnown ? 'method_not_allowed' : 'not_found', message: `${req.method} ${rawPath} is not an operation of the API` })
        }
        validators = ops.find((o) => o.op === found.op)!.v
        pathParams = found.params
      }
      const v = validators!
      const problems: Problem[] = []
      if (v.params && !v.params(pathParams)) problems.push(...toProblems('path', v.params.errors))
      if (v.query) {
        const query: Record<string, string | string[]> = {}
        if (q !== -1) {
          for (const [k, val] of new URLSearchParams(req.target.slice(q + 1))) {
            const prev = query[k]
            query[k] = prev === undefined ? val : Array.isArray(prev) ? [...prev, val] : [prev, val]
          }
        }
        if (!v.query(query)) problems.push(...toProblems('query', v.query.errors))
      }
      if (v.headers) {
        const map = headersToMap(req.rawHeaders)
        const flat: Record<string, string> = {}
        for (const k in map) flat[k] = map[k]!.join(', ')
        if (!v.headers(flat)) problems.push(...toProblems('header', v.headers.errors))
      }
      if (v.body) {
        const data = await bufferRequestBody(req, limit)
        if (data === undefined) return tooLarge(limit)
        if (data.length === 0) {
          if (v.bodyRequired) problems.push({ in: 'body', path: '/', message: 'a request body is required' })
        } else {
          const type = getHeader(req.rawHeaders, 'content-type') ?? ''
          if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
            problems.push({ in: 'header', path: '/content-type', message: `must be application/json, got ${type || 'nothing'}` })
          } else {
            let json: unknown
            try {
              json = JSON.parse(data.toString('utf8'))
              if (!v.body(json)) problems.push(...toProblems('body', v.body.errors))
            } catch (err) {
              problems.push({ in: 'body', path: '/', message: `is not valid JSON: ${(err as Error).message}` })
            }
          }
        }
      }
      setActionResult(state, 'gw', 'validate_request', { valid: problems.length === 0, errors: problems })
      if (problems.length > 0) return respondJson(400, { error: 'invalid_request', message: 'the request does not match the API schema', errors: problems })
    }
  },
}

/** Point `#/...` references inside a sub-schema at the registered OpenAPI document. */
function rebase(schema: Record<string, unknown>, docId: string): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema, (k, v: unknown) => (k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `${docId}${v}` : v))) as Record<string, unknown>
}
