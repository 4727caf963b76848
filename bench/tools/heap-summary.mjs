#!/usr/bin/env node
// Summarise a V8 .heapsnapshot without a browser: retained-by-nobody-in-particular, plain
// self size and count per constructor (objects, closures, strings, arrays…), top N.
// Enough to see what one in-flight request is made of when divided by the request count.
//   node bench/tools/heap-summary.mjs <file.heapsnapshot> [top] [divideBy]
import { readFileSync } from 'node:fs'

const [file, topArg, divArg] = process.argv.slice(2)
const top = Number(topArg ?? 30)
const div = Number(divArg ?? 1)
const snap = JSON.parse(readFileSync(file, 'utf8'))
const f = snap.snapshot.meta.node_fields
const types = snap.snapshot.meta.node_types[0]
const width = f.length
const iType = f.indexOf('type'), iName = f.indexOf('name'), iSize = f.indexOf('self_size')
const by = new Map()
let total = 0
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + iType]]
  let name = snap.strings[snap.nodes[i + iName]]
  if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)'
  else if (type === 'code') name = '(code)'
  else if (type === 'closure') name = `closure ${name}`
  else if (type !== 'object') name = `(${type}) ${type === 'native' ? name : ''}`.trim()
  const size = snap.nodes[i + iSize]
  total += size
  const e = by.get(name) ?? { count: 0, size: 0 }
  e.count++
  e.size += size
  by.set(name, e)
}
console.log(`${file}: ${(total / 1048576).toFixed(1)} MiB in the snapshot${div > 1 ? `; per-unit figures divided by ${div}` : ''}`)
for (const [name, e] of [...by].sort((a, b) => b[1].size - a[1].size).slice(0, top)) {
  const per = div > 1 ? `  ${(e.count / div).toFixed(2).padStart(7)} × / ${String(Math.round(e.size / div)).padStart(6)} B per unit` : ''
  console.log(`${(e.size / 1048576).toFixed(2).padStart(8)} MiB ${String(e.count).padStart(9)}×  ${name}${per}`)
}
