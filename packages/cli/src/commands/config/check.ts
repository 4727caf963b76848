import { Flags } from '@oclif/core'
import { GwCommand } from '../../cli/gw-command.js'
import { existsSync } from 'node:fs'
import { configPath, configShape, loadConfig } from '../../config/config-file.js'
import { toCliError } from '../../output/cli-error.js'

export default class ConfigCheck extends GwCommand {
  static override summary = 'Show where the config file is and check that it is valid'
  static override flags = { config: Flags.string({ description: 'config file (default: the platform config dir; also GW_CONFIG)' }) }

  async run(): Promise<void> {
    const { flags } = await this.parse(ConfigCheck)
    try {
      const file = configPath(flags.config)
      if (!existsSync(file)) {
        this.log(`No config file yet; it would be ${file}`)
        this.log('Create it with: gw config add-authtoken <token>')
        return
      }
      const shape = configShape(file)
      const config = loadConfig(file)
      this.log(`Valid configuration file at ${file}${shape === 'v3' ? '' : ` (${shape}, read as version 3)`}`)
      this.log(`  authtoken:   ${config.agent?.authtoken ? 'set' : 'not set'}`)
      this.log(`  relay:       ${config.agent?.connect_url ?? 'not set (the embedded local relay is used)'}`)
      this.log(`  endpoints:   ${(config.endpoints ?? []).map((e) => e.name).join(', ') || 'none'}`)
    } catch (err) {
      throw toCliError(err)
    }
  }
}
