#!/usr/bin/env node
// Builds a patched copy of a built package (packages/<pkg>/dist) in a temp directory, to
// measure a proposed change before its owner makes it. The bench never edits other
// packages: it loads the copy through GW_BENCH_RELAY_DIST / GW_BENCH_AGENT_DIST.
//   node bench/experiments/make-variant.mjs <experiment-name>
// prints the directory to pass, e.g.
//   GW_BENCH_RELAY_DIST=$(node bench/experiments/make-variant.mjs relay-no-empty-pipeline) node bench/run.mjs --quick --only 1,2
import { cpSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rootDir } from '../lib/children.mjs'
import { EXPERIMENTS } from './experiments.mjs'

const name = process.argv[2]
const experiment = EXPERIMENTS[name]
if (!experiment) {
  console.error(`unknown experiment ${name}; one of: ${Object.keys(EXPERIMENTS).join(', ')}`)
  process.exit(1)
}
const base = mkdtempSync(join(tmpdir(), `gw-bench-${name}-`))
// The copy resolves @gw/* and undici/ws through the repo's node_modules.
symlinkSync(join(rootDir, 'node_modules'), join(base, 'node_modules'))
const dist = join(base, experiment.pkg, 'dist')
cpSync(join(rootDir, 'packages', experiment.pkg, 'dist'), dist, { recursive: true })
for (const { file, from, to } of experiment.patches) {
  const path = join(dist, file)
  const text = readFileSync(path, 'utf8')
  if (!text.includes(from)) {
    console.error(`${name}: ${file} no longer contains the text to patch; the experiment is stale`)
    process.exit(2)
  }
  writeFileSync(path, text.replace(from, to))
}
console.log(dist)
