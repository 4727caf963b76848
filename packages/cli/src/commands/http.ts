import { Args, Command, Flags } from '@oclif/core'
import { runTunnels, sharedTunnelFlags, type TunnelFlags } from '../tunnel-runner.js'
import { parseUpstream } from '../agent/upstream.js'
import { toCliError } from '../output/cli-error.js'

export default class Http extends Command {
  static override summary = 'Put a local HTTP service on a public URL'
  static override description = `Forwards a public URL on the relay to UPSTREAM on this machine.

With no relay configured (--relay, GW_RELAY or the config file), gw starts a relay on
127.0.0.1 that serves http://<name>.localhost:<port>: reachable from this machine only.`

  static override examples = [
    '<%= config.bin %> http 3000',
    '<%= config.bin %> http localhost:8080 --subdomain myapp',
    '<%= config.bin %> http https://localhost:8443 --relay https://tunnel.example.com',
  ]

  static override args = {
    upstream: Args.string({
      required: true,
      description: 'the local service: a port (3000), host:port, or a URL (https://localhost:8443)',
    }),
  }

  static override flags = {
    ...sharedTunnelFlags,
    subdomain: Flags.string({ description: 'the public name to ask for (random when omitted)', exclusive: ['url'] }),
    url: Flags.string({ description: 'the public URL or host to ask for, e.g. myapp.tunnel.example.com' }),
    'host-header': Flags.string({ description: 'rewrite the Host header: "rewrite" for the upstream\'s host, or a value' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Http)
    try {
      parseUpstream(args.upstream)
      const publicName = flags.subdomain ?? (flags.url ? nameFromUrl(flags.url) : undefined)
      await runTunnels(this, flags as TunnelFlags, [
        {
          name: 'command_line',
          upstream: args.upstream,
          ...(publicName ? { publicName } : {}),
          ...(flags['host-header'] ? { hostHeader: flags['host-header'] } : {}),
        },
      ])
    } catch (err) {
      throw toCliError(err)
    }
  }
}

/** `https://myapp.tunnel.example.com` or `myapp.tunnel.example.com` → `myapp`. */
function nameFromUrl(value: string): string {
  const host = value.replace(/^[a-z]+:\/\//i, '').split(/[/:]/)[0] ?? ''
  return host.split('.')[0] ?? ''
}
