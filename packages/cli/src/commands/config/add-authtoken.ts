import { Args, Flags } from '@oclif/core'
import { GwCommand } from '../../cli/gw-command.js'
import { configPath, loadConfig, saveConfig } from '../../config/config-file.js'
import { toCliError } from '../../output/cli-error.js'

export default class ConfigAddAuthtoken extends GwCommand {
  static override summary = 'Save an authtoken to the config file'
  static override examples = ['<%= config.bin %> config add-authtoken 4nq0...']
  static override args = { token: Args.string({ required: true, description: 'the authtoken the relay operator gave you' }) }
  static override flags = { config: Flags.string({ description: 'config file (default: the platform config dir; also GW_CONFIG)' }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ConfigAddAuthtoken)
    try {
      const file = configPath(flags.config)
      const config = loadConfig(file)
      const wasV2 = String(config.version ?? '') === '2'
      config.agent = { ...config.agent, authtoken: args.token }
      saveConfig(file, config)
      this.log(`Authtoken saved to configuration file: ${file}`)
      // The file is written back in the shape gw read it as; say so rather than surprise.
      if (wasV2) this.log('The file was in ngrok\'s v2 shape; it is now version 3 (tunnels: became endpoints:)')
    } catch (err) {
      throw toCliError(err)
    }
  }
}
