/** Reading a policy file from disk: YAML or JSON, errors with file, line and column. */
import { readFileSync } from 'node:fs'
import { compilePolicy, type CompiledPolicy, type CompilePolicyOptions } from './engine.js'
import { PolicyError } from './errors.js'
import { parsePolicyText, type ParsedPolicyText } from './source.js'

export function readPolicyFile(path: string): ParsedPolicyText {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new PolicyError('GW_ERR_POLICY_FILE', `cannot read the policy file: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, {
      file: path, line: undefined, col: undefined, path: '(document)',
    })
  }
  return parsePolicyText(text, path)
}

/**
 * Read, validate and compile a policy file. Throws `PolicyError` (with `location`)
 * when it is not valid.
 *
 * @example
 * const policy = loadPolicyFile('policy.yml', { upstreams: config.upstreams })
 * if (!policy.empty) outcome = await policy.onHttpRequest(req, createPolicyState())
 */
export function loadPolicyFile(path: string, options: Omit<CompilePolicyOptions, 'source'> = {}): CompiledPolicy {
  const { value, source } = readPolicyFile(path)
  return compilePolicy(value, { ...options, source })
}

/** Validate without keeping anything running (for `gw policy check` and start-up checks). */
export async function checkPolicyFile(path: string, options: Omit<CompilePolicyOptions, 'source'> = {}): Promise<void> {
  const policy = loadPolicyFile(path, options)
  await policy.close()
}
