import { Args, loadHelpClass } from '@oclif/core'
import { GwCommand } from '../cli/gw-command.js'

export default class Help extends GwCommand {
  static override summary = 'Show help for gw or for one command'
  static override strict = false
  static override args = { command: Args.string({ description: 'the command to explain, e.g. http or "config check"' }) }
  static override examples = ['<%= config.bin %> help', '<%= config.bin %> help http', '<%= config.bin %> help config check']

  async run(): Promise<void> {
    const { argv } = await this.parse(Help)
    const HelpClass = await loadHelpClass(this.config)
    await new HelpClass(this.config, this.config.pjson.oclif.helpOptions ?? {}).showHelp(argv as string[])
  }
}
