#!/usr/bin/env node
// Builds a patched copy of the built packages (relay, cli and protocol dist) in a temp
// directory, to measure a proposed change before its owner makes it. The bench never
// edits other packages: bench/procs load the copy through GW_BENCH_RELAY_DIST and
// GW_BENCH_AGENT_DIST, and the copy's own node_modules/@gw points at the patched protocol.
//   node bench/experiments/make-variant.mjs <experiment>[+<experiment>…]
// prints the directory; bench/tools/ab.mjs takes it as `name=<dir>`.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rootDir } from '../lib/children.mjs'
import { EXPERIMENTS } from './experiments.mjs'

const names = (process.argv[2] ?? '').split('+').filter(Boolean)
for (const name of names) {
  if (!EXPERIMENTS[name]) {
    console.error(`unknown experiment ${name}; one of: ${Object.keys(EXPERIMENTS).join(', ')}`)
    process.exit(1)
  }
}
const base = mkdtempSync(join(tmpdir(), `gw-bench-variant-`))
const modules = join(base, 'node_modules')
mkdirSync(join(modules, '@gw'), { recursive: true })
for (const entry of readdirSync(join(rootDir, 'node_modules'))) {
  if (entry !== '@gw' && !entry.startsWith('.')) symlinkSync(join(rootDir, 'node_modules', entry), join(modules, entry))
}
for (const pkg of ['protocol', 'relay', 'cli']) {
  cpSync(join(rootDir, 'packages', pkg, 'dist'), join(base, pkg, 'dist'), { recursive: true })
  cpSync(join(rootDir, 'packages', pkg, 'package.json'), join(base, pkg, 'package.json'))
  // The CLI's bin, so that a variant runs as `gw relay` / `gw http` too (lib/gw-cli.mjs).
  if (pkg === 'cli') cpSync(join(rootDir, 'packages/cli/bin'), join(base, 'cli/bin'), { recursive: true })
  symlinkSync(join(base, pkg), join(modules, '@gw', pkg))
}
for (const name of names) {
  if (EXPERIMENTS[name].applied) {
    console.error(`${name}: already in the tree since ${EXPERIMENTS[name].applied}; nothing to patch`)
    continue
  }
  for (const { pkg, file, from, to } of EXPERIMENTS[name].patches) {
    const path = join(base, pkg, 'dist', file)
    const text = readFileSync(path, 'utf8')
    if (!text.includes(from)) {
      console.error(`${name}: ${pkg}/dist/${file} no longer contains the text to patch; the experiment is stale`)
      process.exit(2)
    }
    writeFileSync(path, text.replace(from, to))
  }
}
console.log(base)
