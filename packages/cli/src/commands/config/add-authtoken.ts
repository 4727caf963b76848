import { Args, Command, Flags } from '@oclif/core'
import { configPath, loadConfig, saveConfig } from '../../config/config-file.js'
import { toCliError } from '../../output/cli-error.js'

export default class ConfigAddAuthtoken extends Command {
  static override summary = 'Save an authtoken to the config file'
  static override examples = ['<%= config.bin %> config add-authtoken 4nq0...']
  static override args = { token: Args.string({ required: true, description: 'the authtoken the relay operator gave you' }) }
  static override flags = { config: Flags.string({ description: 'config file (default: the platform config dir; also GW_CONFIG)' }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ConfigAddAuthtoken)
    try {
      const file = configPath(flags.config)
      const config = loadConfig(file)
      config.agent = { ...config.agent, authtoken: args.token }
      saveConfig(file, config)
      this.log(`Authtoken saved to configuration file: ${file}`)
    } catch (err) {
      throw toCliError(err)
    }
  }
}
