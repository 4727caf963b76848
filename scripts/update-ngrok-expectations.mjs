#!/usr/bin/env node
// After gw learns something new: re-check every `todo` fixture in
// test/policy/fixtures/ngrok-docs/expectations.json against the built engine (run `tsc -b`
// first). A todo that loads now is removed (it becomes accepted); one refused for another
// reason gets its new message. `refused` entries are never touched: ngrok-cloud and
// docs-wrong refusals are decisions, and the fixture test reports any that change.
// Prints what moved, so the counts in docs/ngrok-compatibility.md can be updated.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { compilePolicy, policyKind } from '../packages/cli/dist/policy/index.js'

const dir = fileURLToPath(new URL('../test/policy/fixtures/ngrok-docs/', import.meta.url))
const manifest = JSON.parse(readFileSync(dir + 'manifest.json', 'utf8'))
const path = dir + 'expectations.json'
const expectations = JSON.parse(readFileSync(path, 'utf8'))
const MATCH_LENGTH = 160
// The allowed-values tail of "is not a known action" grows with every action gw learns;
// the match stops before it, so a new action does not rewrite every such entry.
const matchOf = (error) => error.split('; allowed values: ')[0].slice(0, MATCH_LENGTH)

function policyOf(f) {
  let text = JSON.stringify(f.policy)
  for (const [from, to] of Object.entries(expectations[f.id]?.fill ?? {})) text = text.split(from).join(to)
  return JSON.parse(text)
}

let accepted = 0
let changed = 0
for (const f of manifest.fixtures) {
  const e = expectations[f.id]
  if (e?.status !== 'todo') continue
  let error
  try {
    const secrets = e.secrets ?? {}
    // As the fixture test compiles it: an on_tcp_connect-only document as a tcp endpoint's, unless the entry names the endpoint.
    const doc = policyOf(f)
    await compilePolicy(doc, { secrets: { get: (v, n) => secrets[`${v}/${n}`] }, kind: e.kind ?? policyKind(doc) }).close()
  } catch (err) {
    error = err.message.split('\n')[0]
  }
  if (error === undefined) {
    console.log(`accepted now: ${f.id}`)
    const keep = Object.fromEntries(['fill', 'secrets', 'kind'].filter((k) => e[k]).map((k) => [k, e[k]]))
    if (Object.keys(keep).length > 0) expectations[f.id] = keep
    else delete expectations[f.id]
    accepted++
  } else if (!error.includes(e.match)) {
    console.log(`refused differently: ${f.id}\n  was: ${e.match}\n  now: ${matchOf(error)}`)
    e.match = matchOf(error)
    changed++
  } else if (e.match !== matchOf(error) && e.match.includes('; allowed values: ')) {
    e.match = matchOf(error)
  }
}
writeFileSync(path, JSON.stringify(expectations, null, 1) + '\n')
const counts = {}
for (const f of manifest.fixtures) {
  const e = expectations[f.id] ?? {}
  const key = e.reason ? `${e.status}/${e.reason}` : (e.status ?? 'accepted')
  counts[key] = (counts[key] ?? 0) + 1
}
console.log(`${accepted} accepted now, ${changed} refused differently; counts: ${JSON.stringify(counts)}`)
