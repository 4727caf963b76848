// Figures over rounds: medians, so one round disturbed by other work on the machine does
// not move the result.

/** The median of the finite values; NaN when there are none. */
export function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b)
  return s.length ? s[Math.floor(s.length / 2)] : NaN
}
