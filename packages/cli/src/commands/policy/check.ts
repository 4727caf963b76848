import { existsSync } from 'node:fs'
import { Args, Errors, Flags } from '@oclif/core'
import { GwCommand } from '../../cli/gw-command.js'
import { PolicyError, readPolicyFile, compilePolicy, policyKind } from '../../policy/index.js'
import { loadSecretStore } from '../../config/secrets-file.js'
import { configPath, loadConfig } from '../../config/config-file.js'
import { toCliError } from '../../output/cli-error.js'

export default class PolicyCheck extends GwCommand {
  static override summary = 'Validate a traffic policy file without starting anything'
  static override description = `Reads a traffic policy (YAML or JSON, ngrok's format), checks every rule, expression
and action config, and reports the first problem with its file, line and column and the
allowed values. Exits 0 when the policy is valid, 2 when it is not.

A policy with on_tcp_connect and no HTTP phase is checked as a tcp/tls endpoint's (the
phase those endpoints run); any other as an http endpoint's. --endpoint says which: an
http endpoint's on_tcp_connect may hold only terminate-tls, which the relay runs.

Upstream pools named by forward actions may come from the agent config file's
upstreams: section; it is read when it exists (--config picks another file).`

  static override examples = ['<%= config.bin %> policy check policy.yml', '<%= config.bin %> policy check policy.json --json']

  static override args = {
    file: Args.string({ required: true, description: 'the policy file' }),
  }

  static override flags = {
    json: Flags.boolean({ description: 'print the result as JSON' }),
    config: Flags.string({ description: 'agent config file whose upstreams the policy may name (default: the platform config dir; also GW_CONFIG)' }),
    endpoint: Flags.string({ description: 'the endpoint the policy is for (default: tcp when it has on_tcp_connect and no HTTP phase, else http)', options: ['http', 'tcp', 'tls'] }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(PolicyCheck)
    try {
      const { value, source } = readPolicyFile(args.file)
      const configFile = configPath(flags.config)
      const upstreams = existsSync(configFile) ? loadConfig(configFile).upstreams : undefined
      const kind = (flags.endpoint as 'http' | 'tcp' | 'tls' | undefined) ?? policyKind(value)
      const policy = compilePolicy(value, { source, kind, secrets: loadSecretStore(configFile), ...(upstreams ? { upstreams } : {}) })
      await policy.close()
      const doc = (value ?? {}) as Record<string, unknown[] | undefined>
      const count = (phase: string) => (Array.isArray(doc[phase]) ? doc[phase]!.length : 0)
      if (kind !== 'http') {
        if (flags.json) this.log(JSON.stringify({ valid: true, file: args.file, endpoint: 'tcp', rules: { on_tcp_connect: count('on_tcp_connect') } }))
        else this.log(`${args.file}: valid traffic policy for a tcp or tls endpoint (${count('on_tcp_connect')} on_tcp_connect rules)`)
      } else if (flags.json) {
        this.log(JSON.stringify({ valid: true, file: args.file, rules: { on_http_request: count('on_http_request'), on_http_response: count('on_http_response') } }))
      } else {
        this.log(`${args.file}: valid traffic policy (${count('on_http_request')} on_http_request rules, ${count('on_http_response')} on_http_response rules${policy.terminateTls ? ', terminate-tls run by the relay' : ''})`)
      }
    } catch (err) {
      if (err instanceof PolicyError) {
        if (flags.json) {
          this.log(JSON.stringify({ valid: false, code: err.code, file: err.location?.file, line: err.location?.line, col: err.location?.col, path: err.location?.path, reason: err.reason, allowed: err.allowed }))
          this.exit(2)
        }
        throw new Errors.CLIError(err.message, { code: err.code, exit: 2 })
      }
      throw toCliError(err)
    }
  }
}
