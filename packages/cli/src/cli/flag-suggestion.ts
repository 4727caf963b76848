/**
 * What to say about a flag gw does not know: the nearest flag the command has ("did you
 * mean --basic-auth?"), or, for an ngrok flag gw has no equivalent of, what to use
 * instead. One or two lines, never the whole usage: the person made a typo, they do not
 * need 60 lines of help to find it.
 */

/** ngrok flags (current and old) that gw spells differently or serves another way. */
const NGROK_FLAGS: Record<string, string> = {
  '--region': 'gw has no regions: the relay is the one --relay points at',
  '--name': 'gw http names its tunnel command_line; use gw start with an endpoints: list in the config file to name them',
  '--metadata': 'gw does not keep endpoint metadata',
  '--compression': 'use a compress-response rule in --traffic-policy-file',
  '--request-header-add': 'use an add-headers rule in --traffic-policy-file',
  '--request-header-remove': 'use a remove-headers rule in --traffic-policy-file',
  '--response-header-add': 'use an add-headers rule under on_http_response in --traffic-policy-file',
  '--response-header-remove': 'use a remove-headers rule under on_http_response in --traffic-policy-file',
  '--circuit-breaker': 'use a circuit-breaker rule in --traffic-policy-file',
  '--verify-webhook': 'use a verify-webhook rule in --traffic-policy-file',
  '--verify-webhook-secret': 'use a verify-webhook rule in --traffic-policy-file',
  '--oidc': 'use an openid-connect (oidc) rule in --traffic-policy-file',
  '--mutual-tls-cas': 'gw does not terminate mutual TLS',
  '--proxy-proto': 'gw does not send the PROXY protocol',
  '--scheme': 'gw serves both http and https URLs',
  '--bind-tls': 'gw serves both http and https URLs',
}

/** Optimal string alignment distance: Levenshtein plus swapped neighbours (`--basci-auth`). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/** The closest of `candidates` to `word`, if close enough to be the one meant. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const distance = editDistance(word, c)
    if (distance < bestDistance) {
      best = c
      bestDistance = distance
    }
  }
  // A third of the word, at least 2: `--basic-aut` finds `--basic-auth`, `--foo` finds nothing.
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

/**
 * One line about an unknown flag.
 * @example
 * unknownFlagMessage('--basic-aut', ['--basic-auth', '--relay'], 'gw http')
 * // 'unknown flag --basic-aut for gw http; did you mean --basic-auth? (gw http --help lists them all)'
 */
export function unknownFlagMessage(flag: string, known: readonly string[], command: string): string {
  const name = flag.split('=')[0]!
  const help = `${command} --help lists them all`
  const ngrok = NGROK_FLAGS[name]
  if (ngrok !== undefined) return `${name} is an ngrok flag gw does not have: ${ngrok} (${help})`
  const guess = closest(name, known)
  return guess ? `unknown flag ${name} for ${command}; did you mean ${guess}? (${help})` : `unknown flag ${name} for ${command} (${help})`
}
