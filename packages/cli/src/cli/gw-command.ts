/**
 * The base of every gw command. It turns oclif's parse errors (an unknown flag, a bad
 * option value, a missing argument) into one or two lines and exit 2, instead of the
 * error followed by the whole usage text.
 */
import { Command, Errors, type Interfaces } from '@oclif/core'

type FlagOutput = { [name: string]: unknown }
type ArgOutput = { [name: string]: unknown }
import { unknownFlagMessage } from './flag-suggestion.js'

/** oclif's CLIParseError, which @oclif/core does not export: it carries `parse`. */
interface ParseFailure extends Errors.CLIError {
  parse: unknown
  flags?: string[]
  args?: Array<{ name: string; description?: string }>
}

function isParseFailure(err: unknown): err is ParseFailure {
  return err instanceof Errors.CLIError && 'parse' in err
}

export abstract class GwCommand extends Command {
  protected override async parse<F extends FlagOutput, B extends FlagOutput, A extends ArgOutput>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    try {
      return await super.parse(options, argv)
    } catch (err) {
      if (!isParseFailure(err)) throw err
      const command = `${this.config.bin} ${this.id?.replace(/:/g, ' ') ?? ''}`.trim()
      if (Array.isArray(err.flags) && err.flags.length > 0) {
        const definition = (options ?? (this.constructor as unknown as Interfaces.Input<F, B, A>)).flags ?? {}
        const known = Object.entries(definition).flatMap(([name, flag]) => {
          const f = flag as { aliases?: string[]; allowNo?: boolean; hidden?: boolean }
          if (f.hidden) return []
          return [`--${name}`, ...(f.allowNo ? [`--no-${name}`] : []), ...(f.aliases ?? []).map((a) => `--${a}`)]
        })
        const lines = err.flags.map((flag) => unknownFlagMessage(flag, known, command))
        throw new Errors.CLIError(lines.join('\n'), { code: 'GW_ERR_INVALID_FLAG', exit: 2 })
      }
      if (Array.isArray(err.args) && err.args.length > 0 && /^Missing/.test(err.message)) {
        const names = err.args.map((a) => a.name.toUpperCase()).join(' ')
        const described = err.args.map((a) => `${a.name.toUpperCase()} is ${a.description ?? 'required'}`).join('; ')
        throw new Errors.CLIError(`${command} needs ${names}: ${described} (${command} --help shows examples)`, { code: 'GW_ERR_INVALID_FLAG', exit: 2 })
      }
      // oclif appends "See more help with --help" and would print the usage after it.
      const message = err.message.replace(/\nSee more help with --help$/, '')
      throw new Errors.CLIError(`${message}\n(${command} --help shows the usage)`, { code: 'GW_ERR_INVALID_FLAG', exit: 2 })
    }
  }
}
