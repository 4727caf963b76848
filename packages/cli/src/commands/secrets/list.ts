import { Args, Flags } from '@oclif/core'
import { GwCommand } from '../../cli/gw-command.js'
import { configPath } from '../../config/config-file.js'
import { readVaults, secretsPath } from '../../config/secrets-file.js'
import { toCliError } from '../../output/cli-error.js'

export default class SecretsList extends GwCommand {
  static override summary = 'List the stored secrets as vault/name (never their values)'
  static override args = { vault: Args.string({ required: false, description: 'only this vault' }) }
  static override flags = { config: Flags.string({ description: 'config file beside which secrets.json lives (default: the platform config dir; also GW_CONFIG)' }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SecretsList)
    try {
      const vaults = readVaults(secretsPath(configPath(flags.config)))
      const lines = Object.keys(vaults).sort()
        .filter((v) => args.vault === undefined || v === args.vault)
        .flatMap((v) => Object.keys(vaults[v]!).sort().map((n) => `${v}/${n}`))
      if (lines.length === 0) this.log(args.vault === undefined ? 'No secrets stored' : `No secrets in vault ${args.vault}`)
      for (const l of lines) this.log(l)
    } catch (err) {
      throw toCliError(err)
    }
  }
}
