#!/usr/bin/env node
/**
 * Collects every Traffic Policy example from a local checkout of ngrok's documentation
 * (github.com/ngrok/ngrok-docs) into test/policy/fixtures/ngrok-docs/manifest.json, each
 * with the page (and line) it came from. The fixtures are committed, so CI never fetches;
 * re-run this after updating the checkout and review the diff.
 *
 *   node scripts/extract-ngrok-policy-examples.mjs /path/to/ngrok-docs [commit]
 *
 * A fenced ```yaml / ```json block is an example when it parses and is a policy document
 * (it has a phase key), an agent config whose endpoints carry `traffic_policy`, or a
 * Kubernetes resource with a policy in its spec. ngrok's pages show most examples twice
 * (YAML and JSON tabs) and snippets are imported by several pages, so documents are
 * de-duplicated by their parsed value; every place one appears is kept in `sources`.
 * Blocks that are fragments (a lone rule or action list) are counted, not kept: they are
 * not documents a user can load.
 */
import { readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { join, relative, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHash } from 'node:crypto'
import { parseAllDocuments } from 'yaml'

const root = process.argv[2]
if (!root) {
  console.error('usage: node scripts/extract-ngrok-policy-examples.mjs <ngrok-docs checkout> [commit]')
  process.exit(2)
}
const commit = process.argv[3] ?? ''

// The sections issue 11 names; snippets/* hold the text those pages import.
const SECTIONS = ['traffic-policy', 'snippets/traffic-policy', 'gateway', 'snippets/gateway', 'integrations', 'guides', 'snippets/guides']
const PHASES = ['on_http_request', 'on_http_response', 'on_tcp_connect', 'on_event_stream_message', 'inbound', 'outbound']

function walk(dir, out) {
  let names
  try {
    names = readdirSync(dir)
  } catch {
    return out
  }
  for (const name of names.sort()) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p, out)
    else if (/\.mdx?$/.test(name)) out.push(p)
  }
  return out
}

/** Fenced code blocks with their language and 1-based start line; indentation inside JSX is removed. */
function codeBlocks(text) {
  const lines = text.split('\n')
  const blocks = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)(.*)$/.exec(lines[i])
    if (!open) continue
    const [, indent, fence, lang] = open
    const body = []
    let j = i + 1
    for (; j < lines.length; j++) {
      if (lines[j].trim().startsWith(fence) && lines[j].trim().replace(/[`~]/g, '') === '') break
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart())
    }
    blocks.push({ lang: lang.toLowerCase(), line: i + 1, text: body.join('\n') })
    i = j
  }
  return blocks
}

function isPolicy(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && PHASES.some((k) => k in v)
}

/** The policies inside one parsed document, with what wrapped them. */
function policiesIn(v) {
  if (isPolicy(v)) return [{ context: 'policy', policy: v }]
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return []
  const out = []
  // An agent config file (v3): endpoints[].traffic_policy.
  if (Array.isArray(v.endpoints)) {
    for (const ep of v.endpoints) if (ep && isPolicy(ep.traffic_policy)) out.push({ context: 'agent-config', policy: ep.traffic_policy, endpoint: { url: ep.url, upstream: ep.upstream } })
  }
  // A Kubernetes resource: spec.policy (NgrokTrafficPolicy), spec.trafficPolicy.inline (AgentEndpoint/CloudEndpoint).
  const spec = v.spec
  if (spec && typeof spec === 'object') {
    if (isPolicy(spec.policy)) out.push({ context: `k8s ${v.kind ?? ''}`.trim(), policy: spec.policy })
    const tp = spec.trafficPolicy
    if (tp && isPolicy(tp.inline)) out.push({ context: `k8s ${v.kind ?? ''}`.trim(), policy: tp.inline })
  }
  // An API body: {"traffic_policy": "<JSON or YAML text>"} or an object.
  if (isPolicy(v.traffic_policy)) out.push({ context: 'api', policy: v.traffic_policy })
  return out
}

function looksLikeFragment(text) {
  return /^\s*-?\s*(type|actions|expressions):/m.test(text) || /"type"\s*:\s*"[a-z-]+"/.test(text)
}

const stable = (v) => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x))

const byKey = new Map()
const stats = { files: 0, blocks: 0, fragments: 0, unparsable: 0 }
for (const section of SECTIONS) {
  for (const file of walk(join(root, section), [])) {
    stats.files++
    const page = relative(root, file)
    for (const b of codeBlocks(readFileSync(file, 'utf8'))) {
      if (!['yaml', 'yml', 'json', 'jsonc'].includes(b.lang)) continue
      stats.blocks++
      let docs
      try {
        docs = b.lang.startsWith('json') ? [JSON.parse(b.text)] : parseAllDocuments(b.text).map((d) => {
          if (d.errors.length) throw d.errors[0]
          return d.toJS()
        })
      } catch {
        // Some blocks are templates with placeholders that are not YAML/JSON at all.
        if (/on_http_(request|response)|on_tcp_connect/.test(b.text)) stats.unparsable++
        continue
      }
      let found = 0
      for (const d of docs) {
        for (const p of policiesIn(d)) {
          found++
          const key = stable(p.policy)
          const src = { page, line: b.line, lang: b.lang === 'yml' ? 'yaml' : b.lang, context: p.context }
          const have = byKey.get(key)
          if (have) have.sources.push(src)
          else byKey.set(key, { policy: p.policy, sources: [src], ...(p.endpoint ? { endpoint: p.endpoint } : {}) })
        }
      }
      if (!found && looksLikeFragment(b.text)) stats.fragments++
    }
  }
}

// Ids name the first page an example appears on, plus a short hash of its content, so
// they stay put when unrelated examples are added or removed.
const fixtures = [...byKey.entries()].map(([key, f]) => {
  const slug = f.sources[0].page.replace(/\.mdx?$/, '').replace(/^snippets\//, '').replace(/[^A-Za-z0-9]+/g, '-')
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 6)
  return { id: `${slug}-${hash}`, sources: f.sources, ...(f.endpoint ? { endpoint: f.endpoint } : {}), policy: f.policy }
}).sort((a, b) => (a.id < b.id ? -1 : 1))

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'policy', 'fixtures', 'ngrok-docs')
mkdirSync(outDir, { recursive: true })
const manifest = { source: 'https://github.com/ngrok/ngrok-docs', commit, sections: SECTIONS, stats: { ...stats, examples: fixtures.length }, fixtures }
writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n')
console.log(`${fixtures.length} examples from ${stats.blocks} YAML/JSON blocks in ${stats.files} pages (${stats.fragments} fragments, ${stats.unparsable} unparsable, skipped)`)
