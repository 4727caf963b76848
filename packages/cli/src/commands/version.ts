import { GwCommand } from '../cli/gw-command.js'
import { VERSION } from '../version.js'

export default class Version extends GwCommand {
  static override summary = 'Print the version of gw'
  static override examples = ['<%= config.bin %> version']

  async run(): Promise<void> {
    await this.parse(Version)
    // ngrok prints `ngrok version 3.x`; scripts that grep for the number find it the same way.
    this.log(`gw version ${VERSION}`)
  }
}
