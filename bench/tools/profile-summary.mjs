#!/usr/bin/env node
// Summarise a V8 .cpuprofile without a browser: self time per function and per file,
// as a share of the samples. `node bench/tools/profile-summary.mjs <file.cpuprofile> [top]`
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'

const [file, topArg] = process.argv.slice(2)
const top = Number(topArg ?? 30)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfCount = new Map()
for (const id of profile.samples) selfCount.set(id, (selfCount.get(id) ?? 0) + 1)
const total = profile.samples.length

const cwd = process.cwd()
const where = (cf) => {
  const url = cf.url.replace(/^file:\/\//, '')
  return url ? `${relative(cwd, url)}:${cf.lineNumber + 1}` : '(native)'
}
const fnKey = (n) => `${n.callFrame.functionName || '(anonymous)'}  ${where(n.callFrame)}`
const fileKey = (n) => {
  const url = n.callFrame.url.replace(/^file:\/\//, '')
  if (!url) return n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : '(native)'
  const rel = relative(cwd, url)
  return rel.replace(/^node_modules\/([^/@]+|@[^/]+\/[^/]+)\/.*/, 'node_modules/$1')
}

const fnSelf = new Map()
const fileSelf = new Map()
for (const [id, count] of selfCount) {
  const n = byId.get(id)
  fnSelf.set(fnKey(n), (fnSelf.get(fnKey(n)) ?? 0) + count)
  fileSelf.set(fileKey(n), (fileSelf.get(fileKey(n)) ?? 0) + count)
}
const pct = (c) => `${((c / total) * 100).toFixed(1).padStart(5)}%`
const idle = [...selfCount].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, c]) => a + c, 0)
console.log(`${file}: ${total} samples, ${pct(idle)} idle`)
console.log('\nself time by file')
for (const [k, c] of [...fileSelf].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pct(c)}  ${k}`)
console.log('\nself time by function')
for (const [k, c] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(c)}  ${k}`)

// Inclusive time: a function's own samples plus everything it called, counted once per
// sample even when the function recurses. Shown for gw's own code and for node internals
// that gw calls per request (pipeline, AbortController…), which self time hides.
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const inclusive = new Map()
for (const [id, count] of selfCount) {
  const seen = new Set()
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const key = fnKey(byId.get(cur))
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + count)
  }
}
const interesting = (k) => /packages\/|pipeline|AbortController|abortSignal|DOMException|writev|_http_server|_http_outgoing|end-of-stream/.test(k)
console.log('\ninclusive time (gw code and selected node internals)')
for (const [k, c] of [...inclusive].filter(([k]) => interesting(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(c)}  ${k}`)
