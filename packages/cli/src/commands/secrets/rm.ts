import { Args, Flags } from '@oclif/core'
import { GwCommand } from '../../cli/gw-command.js'
import { configPath } from '../../config/config-file.js'
import { readVaults, secretsPath, writeVaults } from '../../config/secrets-file.js'
import { CliError } from '../../errors.js'
import { toCliError } from '../../output/cli-error.js'

export default class SecretsRm extends GwCommand {
  static override summary = 'Remove a stored secret'
  static override args = {
    vault: Args.string({ required: true, description: 'the vault' }),
    name: Args.string({ required: true, description: 'the secret' }),
  }
  static override flags = { config: Flags.string({ description: 'config file beside which secrets.json lives (default: the platform config dir; also GW_CONFIG)' }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SecretsRm)
    try {
      const file = secretsPath(configPath(flags.config))
      const vaults = readVaults(file)
      if (vaults[args.vault]?.[args.name] === undefined) throw new CliError('GW_ERR_SECRETS', `no secret ${args.vault}/${args.name} in ${file}`)
      delete vaults[args.vault]![args.name]
      if (Object.keys(vaults[args.vault]!).length === 0) delete vaults[args.vault]
      writeVaults(file, vaults)
      this.log(`Removed ${args.vault}/${args.name}`)
    } catch (err) {
      throw toCliError(err)
    }
  }
}
