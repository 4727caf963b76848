/**
 * oclif's `command_not_found` hook: `gw htp 3000` says "did you mean gw http?" in one
 * line and exits 2, instead of oclif's bare "command htp not found".
 */
import { Errors, type Hook } from '@oclif/core'
import { closest } from './flag-suggestion.js'

const hook: Hook.CommandNotFound = async function commandNotFound({ id, config }) {
  const commands = config.commands.filter((c) => !c.hidden).map((c) => c.id.replace(/:/g, ' '))
  // oclif joins the arguments into the id (`htp 3000`): keep a topic and one word after it.
  const words = id.split(':')
  const topics = new Set(commands.filter((c) => c.includes(' ')).map((c) => c.split(' ')[0]!))
  const typed = (topics.has(words[0]!) ? words.slice(0, 2) : words.slice(0, 1)).join(' ')
  const guess = closest(typed, [...commands, ...topics])
  const hint = guess ? `did you mean ${config.bin} ${guess}?` : `the commands are ${commands.sort().join(', ')}`
  throw new Errors.CLIError(`${config.bin} has no command "${typed}"; ${hint} (${config.bin} help lists them)`, { code: 'GW_ERR_INVALID_FLAG', exit: 2 })
}

export default hook
