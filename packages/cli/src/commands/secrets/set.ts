import { Args, Flags } from '@oclif/core'
import { createInterface } from 'node:readline'
import { GwCommand } from '../../cli/gw-command.js'
import { configPath } from '../../config/config-file.js'
import { readVaults, SECRET_NAME, secretsPath, writeVaults } from '../../config/secrets-file.js'
import { CliError } from '../../errors.js'
import { toCliError } from '../../output/cli-error.js'

/** The value from a pipe (one trailing newline dropped), or typed at a hidden prompt. */
async function readValue(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = []
    for await (const c of process.stdin) chunks.push(c as Buffer)
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  }
  process.stderr.write('value (not shown): ')
  const rl = createInterface({ input: process.stdin, terminal: true, output: undefined })
  try {
    return await new Promise<string>((resolve) => rl.once('line', resolve))
  } finally {
    rl.close()
    process.stderr.write('\n')
  }
}

export default class SecretsSet extends GwCommand {
  static override summary = 'Store a secret for secrets.get(vault, name) in traffic policies'
  static override description = 'The value is read from standard input (a pipe or a hidden prompt), never from the command line, where ps would show it.'
  static override examples = [
    "printf %s \"$GITHUB_WEBHOOK_SECRET\" | <%= config.bin %> secrets set webhook-secrets github-secret",
    '<%= config.bin %> secrets set my-vault password   # asks for the value',
  ]
  static override args = {
    vault: Args.string({ required: true, description: 'the vault, as secrets.get names it first' }),
    name: Args.string({ required: true, description: 'the secret, as secrets.get names it second' }),
  }
  static override flags = { config: Flags.string({ description: 'config file beside which secrets.json lives (default: the platform config dir; also GW_CONFIG)' }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SecretsSet)
    try {
      for (const n of [args.vault, args.name]) {
        if (!SECRET_NAME.test(n)) throw new CliError('GW_ERR_SECRETS', `${JSON.stringify(n)} is not a valid vault or secret name: use letters, digits, -, _ and . (at most 128)`)
      }
      const value = await readValue()
      if (value === '') throw new CliError('GW_ERR_SECRETS', 'the value is empty; pipe it in, for example: printf %s "$VALUE" | gw secrets set VAULT NAME')
      const file = secretsPath(configPath(flags.config))
      const vaults = readVaults(file)
      const existed = vaults[args.vault]?.[args.name] !== undefined
      ;(vaults[args.vault] ??= Object.create(null) as Record<string, string>)[args.name] = value
      writeVaults(file, vaults)
      this.log(`${existed ? 'Replaced' : 'Stored'} ${args.vault}/${args.name} in ${file}`)
    } catch (err) {
      throw toCliError(err)
    }
  }
}
