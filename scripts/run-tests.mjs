#!/usr/bin/env node
// Runs every compiled test file under test/dist with node:test, the one runner for the
// whole repo. Node 20's `--test` takes no globs, so the file list is built here.
// Extra arguments filter files by substring: `npm test -- mux relay`.
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const testRoot = join(root, 'test', 'dist')

function walk(dir) {
  const out = []
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'fixtures') continue
    const full = join(dir, entry)
    if (statSync(full).isDirectory()) out.push(...walk(full))
    else if (entry.endsWith('.test.js')) out.push(full)
  }
  return out.sort()
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const passthrough = process.argv.slice(2).filter((a) => a.startsWith('-'))
const files = walk(testRoot).filter((f) => filters.length === 0 || filters.some((s) => relative(testRoot, f).includes(s)))
if (files.length === 0) {
  console.error(`no test files matched ${filters.join(' ') || '(all)'} under ${relative(root, testRoot)}`)
  process.exit(1)
}

const child = spawn(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=300000', ...passthrough, ...files],
  { stdio: 'inherit', cwd: root },
)
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)))
