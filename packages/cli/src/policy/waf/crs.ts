/**
 * ngrok's `owasp-crs-request` and `owasp-crs-response` run the OWASP Core Rule Set at
 * paranoia level 1 with anomaly scoring (inbound threshold 5, outbound 4). gw runs the
 * same rules locally with ModSecurity v3: the machine's libmodsecurity and CRS (Debian's
 * `libmodsecurity3` and `modsecurity-crs`, which scripts/setup-system.sh installs), found
 * at their Debian paths or through GW_MODSECURITY_LIB, GW_CRS_SETUP and GW_CRS_RULES.
 *
 * Each action gets a rule text of its own: the engine and body settings, crs-setup.conf,
 * the rules, then the other half of the rule set removed (a request action does not run
 * the response rules, and the reverse) and the user's `exclude_rule_ids`.
 */
import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

export type CrsPhase = 'request' | 'response'

/** ngrok evaluates the first 4 KB of a body. */
export const BODY_BYTES = 4096
export const INBOUND_THRESHOLD = 5
export const OUTBOUND_THRESHOLD = 4

const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/opt/homebrew/lib']

interface CrsPaths {
  lib: string
  setup: string
  rules: string
}

let found: CrsPaths | string | undefined

/** Where libmodsecurity and the CRS are, or why they cannot be used (once per process). */
export function crsPaths(): CrsPaths | string {
  if (found !== undefined) return found
  const lib = process.env.GW_MODSECURITY_LIB || LIB_DIRS.map((d) => join(d, 'libmodsecurity.so.3')).find((p) => existsSync(p))
  const setup = process.env.GW_CRS_SETUP || '/etc/modsecurity/crs/crs-setup.conf'
  const rules = process.env.GW_CRS_RULES || '/usr/share/modsecurity-crs/rules'
  const install = 'install ModSecurity v3 and the OWASP CRS (Debian: apt install libmodsecurity3 modsecurity-crs, as scripts/setup-system.sh does), or point GW_MODSECURITY_LIB, GW_CRS_SETUP and GW_CRS_RULES at them'
  if (lib === undefined || !existsSync(lib)) found = `needs libmodsecurity, which is not on this machine${process.env.GW_MODSECURITY_LIB ? ` (GW_MODSECURITY_LIB=${process.env.GW_MODSECURITY_LIB})` : ''}: ${install}`
  else if (!existsSync(setup)) found = `needs the OWASP CRS setup file, not found at ${setup}: ${install}`
  else if (!existsSync(rules) || !readdirSync(rules).some((f) => f.endsWith('.conf'))) found = `needs the OWASP CRS rules, not found in ${rules}: ${install}`
  else if (!hasKoffi()) found = 'needs the koffi package (a dependency of gw), which is not installed: run npm install'
  else found = { lib, setup, rules }
  return found
}

function hasKoffi(): boolean {
  try {
    createRequire(import.meta.url).resolve('koffi')
    return true
  } catch {
    return false
  }
}

export function crsRules(paths: CrsPaths, phase: CrsPhase, excluded: readonly number[]): string {
  const lines = [
    'SecRuleEngine On',
    // On whatever process_body says: libmodsecurity 3 skips phase 2 (and 4) altogether when
    // body access is off, query arguments included. The body is added only when asked for.
    'SecRequestBodyAccess On',
    'SecResponseBodyAccess On',
    // A body cut at 4 KB is evaluated as far as it goes, not refused.
    'SecRequestBodyLimitAction ProcessPartial',
    'SecResponseBodyLimitAction ProcessPartial',
    'SecResponseBodyMimeType text/plain text/html text/xml application/json',
    'SecAuditEngine Off',
    'SecPcreMatchLimit 1000',
    'SecPcreMatchLimitRecursion 1000',
    // From ModSecurity's (and Coraza's) recommended configuration: JSON and XML bodies are parsed.
    'SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"',
    'SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"',
    `Include ${paths.setup}`,
    `Include ${join(paths.rules, '*.conf')}`,
    phase === 'request' ? 'SecRuleRemoveById 950000-979999' : 'SecRuleRemoveById 911000-949999',
    ...excluded.map((id) => `SecRuleRemoveById ${id}`),
  ]
  return `${lines.join('\n')}\n`
}
