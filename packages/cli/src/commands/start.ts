import { Args, Flags } from '@oclif/core'
import { GwCommand } from '../cli/gw-command.js'
import { runTunnels, sharedTunnelFlags, type TunnelFlags, type TunnelSpec } from '../tunnel-runner.js'
import { configPath, loadConfig } from '../config/config-file.js'
import { toCliError } from '../output/cli-error.js'
import { endpointSpec } from '../config/endpoint-spec.js'
import { CliError } from '../errors.js'

export default class Start extends GwCommand {
  static override summary = 'Start endpoints from the config file, several over one tunnel connection'
  static override description = `Starts the named endpoints (or all with --all) from the config file's
\`endpoints:\` list, in ngrok's v3 shape:

  endpoints:
    - name: api
      url: api.tunnel.example.com
      upstream: { url: 3001 }
      traffic_policy: { on_http_request: [...] }`

  static override strict = false
  static override args = { names: Args.string({ description: 'endpoint names from the config file' }) }
  static override examples = ['<%= config.bin %> start api web', '<%= config.bin %> start --all']
  static override flags = {
    ...sharedTunnelFlags,
    all: Flags.boolean({ description: 'start every endpoint in the config file', default: false }),
  }

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Start)
    try {
      const file = configPath(flags.config)
      const config = loadConfig(file)
      const defined = config.endpoints ?? []
      const names = argv as string[]
      if (!flags.all && names.length === 0) {
        throw new CliError('GW_ERR_INVALID_FLAG', `name the endpoints to start, or pass --all; ${file} defines: ${defined.map((e) => e.name).join(', ') || 'none'}`)
      }
      const chosen = flags.all ? defined : names.map((name) => {
        const found = defined.find((e) => e.name === name)
        if (!found) throw new CliError('GW_ERR_CONFIG', `no endpoint named "${name}" in ${file}; it defines: ${defined.map((e) => e.name).join(', ') || 'none'}`)
        return found
      })
      if (chosen.length === 0) throw new CliError('GW_ERR_CONFIG', `${file} defines no endpoints; add an endpoints: list`)
      const specs: TunnelSpec[] = chosen.map((e, i) => {
        if (!e || typeof e.name !== 'string') throw new CliError('GW_ERR_CONFIG', `${file}: endpoints[${i}] needs a name`)
        return endpointSpec(e, `${file}: endpoint "${e.name}":`)
      })
      await runTunnels(this, flags as TunnelFlags, specs, { file, config })
    } catch (err) {
      throw toCliError(err)
    }
  }
}
