// Number formatting and the verdict helper shared by scenarios and the report.
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

export function ratio(value, base) {
  return Number.isFinite(value) && Number.isFinite(base) && base !== 0 ? value / base : NaN
}

const fmtNum = (digits) => (v) => (Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–')
export const fmt = {
  int: fmtNum(0),
  d1: fmtNum(1),
  d2: fmtNum(2),
  ms: (v) => (Number.isFinite(v) ? `${fmtNum(v < 10 ? 2 : 1)(v)} ms` : '–'),
  addedMs: (v) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${fmtNum(2)(v)} ms` : '–'),
  x: (v) => (Number.isFinite(v) ? `${fmtNum(v < 10 ? 2 : 1)(v)}×` : '–'),
  pct: (v) => (Number.isFinite(v) ? `${fmtNum(0)(v * 100)}%` : '–'),
  mibps: (v) => (Number.isFinite(v) ? `${fmtNum(v < 10 ? 2 : 0)(v)} MiB/s` : '–'),
  mb: (v) => (Number.isFinite(v) ? `${fmtNum(1)(v / MiB)} MiB` : '–'),
  kib: (v) => (Number.isFinite(v) ? `${fmtNum(1)(v / 1024)} KiB` : '–'),
  us: (v) => (Number.isFinite(v) ? `${fmtNum(0)(v)} µs` : '–'),
  text: (v) => (v === undefined || v === null ? '–' : String(v)),
}

/** A target check: met is true/false, or null when a figure it needs is missing. */
export function verdict(what, met, detail) {
  return { what, met: met === null || met === undefined ? null : Boolean(met), detail }
}

/** `relay 70 · agent 81`: each process's share, for the table (the JSON keeps the numbers). */
export function byProcess(procs, values, digits = 0) {
  if (!procs.length) return undefined
  return procs.map((p, i) => `${p.role} ${Number.isFinite(values[i]) ? values[i].toFixed(digits) : '–'}`).join(' · ')
}
