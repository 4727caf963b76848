// The three outputs of a run: a table per scenario on the terminal, bench/results/<date>.json
// with every raw figure, and bench/results/latest.md with the same tables in Markdown.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fmt } from './format.mjs'

function cells(scenario, row) {
  if (row.unavailable) return [row.path, `unavailable: ${row.unavailable}`, ...scenario.columns.slice(1).map(() => '')]
  return [row.path, ...scenario.columns.map((c) => c.fmt(row[c.key]))]
}

function mark(v) {
  return v.met === null ? '–' : v.met ? '✔' : '✘'
}

export function textTable(scenario, result) {
  const head = ['path', ...scenario.columns.map((c) => c.label)]
  const body = result.rows.map((r) => cells(scenario, r))
  // An unavailable row spans the table; it does not widen the second column.
  const widths = head.map((h, i) => Math.max(h.length, ...body.filter((r, j) => !(result.rows[j].unavailable && i === 1)).map((r) => r[i].length)))
  const line = (r, j) => {
    if (j !== undefined && result.rows[j].unavailable) return `  ${r[0].padEnd(widths[0])}  ${r[1]}`
    return `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}`
  }
  const out = [`${scenario.id}. ${scenario.title}`, `   target: ${scenario.target}`, line(head), `  ${widths.map((w) => '─'.repeat(w)).join('  ')}`]
  body.forEach((r, j) => out.push(line(r, j)))
  for (const v of result.verdicts ?? []) out.push(`   ${mark(v)} ${v.what}: ${v.detail ?? ''}`)
  for (const n of result.notes ?? []) out.push(`   note: ${n}`)
  if (result.error) out.push(`   error: ${result.error}`)
  return out.join('\n')
}

export function markdown(run, scenarios) {
  const m = run.machine
  const out = [
    '# gw benchmark: latest results',
    '',
    `Profile \`${run.profile}\`, ${run.startedAt}, commit ${m.commit ?? '?'}, ${Math.round(run.seconds)} s.`,
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${fmt.d1(m.totalMemory / 2 ** 30)} GiB, Node ${m.node}, ${m.platform}, load average at start ${m.loadAverageAtStart.join(' / ')}.`,
    '',
    'Every ratio is against the direct path (or raw ws, or the baseline agent) measured in the same run.',
    ...(run.variant ? [`\`gw-proposed\` is gw-http running the patches \`${run.variant.label}\` from bench/experiments (proposed changes, not in the tree yet); see bench/README.md.`] : []),
    'Reproduce with `npm run bench -- --quick` (or without `--quick` for the full sizes). See bench/README.md.',
    '',
  ]
  for (const s of scenarios) {
    const r = run.results[s.id]
    if (!r) continue
    out.push(`## ${s.id}. ${s.title}`, '', `Target: ${s.target}`, '')
    out.push(`| path | ${s.columns.map((c) => c.label).join(' | ')} |`, `|${'---|'.repeat(s.columns.length + 1)}`)
    for (const row of r.rows) {
      out.push(row.unavailable
        ? `| ${row.path} | unavailable: ${row.unavailable.replaceAll('|', '\\|')} |${' |'.repeat(s.columns.length - 1)}`
        : `| ${cells(s, row).map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`)
    }
    out.push('')
    for (const v of r.verdicts ?? []) out.push(`- ${mark(v)} ${v.what}: ${v.detail ?? ''}`)
    for (const n of r.notes ?? []) out.push(`- note: ${n}`)
    if (r.error) out.push(`- error: ${r.error}`)
    out.push('')
  }
  return out.join('\n')
}

/**
 * `complete`: every scenario on every path. Only such a run replaces latest.md, the committed
 * reference; a partial one (--only, --paths) writes just its JSON (git-ignored).
 */
export function writeResults(outDir, run, scenarios, complete) {
  mkdirSync(outDir, { recursive: true })
  const stamp = run.startedAt.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  const jsonPath = join(outDir, `${stamp}-${run.profile}.json`)
  writeFileSync(jsonPath, `${JSON.stringify(run, null, 2)}\n`)
  if (!complete) return { jsonPath, mdPath: undefined }
  const mdPath = join(outDir, 'latest.md')
  writeFileSync(mdPath, `${markdown(run, scenarios)}\n`)
  return { jsonPath, mdPath }
}
