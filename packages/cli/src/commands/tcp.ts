import { Args, Flags } from '@oclif/core'
import { stringify } from 'yaml'
import { GwCommand } from '../cli/gw-command.js'
import { runTunnels, sharedTunnelFlags, type TunnelFlags } from '../tunnel-runner.js'
import { parseTcpUpstream } from '../upstream/index.js'
import { toCliError } from '../output/cli-error.js'
import { CliError } from '../errors.js'
import { checkBinding } from '../config/endpoint-url.js'
import { parseRawInternalUrl, parseTcpEndpointUrl } from '../config/tcp-endpoint-url.js'
import { effectivePolicy } from '../endpoint-policy.js'
import type { PolicyShorthands } from '../policy/index.js'

export default class Tcp extends GwCommand {
  static override summary = 'Put a local TCP service (ssh, a database…) on a public port'
  static override description = `Forwards tcp://<relay-host>:<port> to UPSTREAM on this machine: each connection a
client makes to the public port is one stream to this agent, which opens a connection to
UPSTREAM and passes the bytes both ways (half-close and resets included).

The port comes from the relay's --tcp-ports range and stays this authtoken's across
reconnects; --url tcp://HOST:PORT (or --remote-addr HOST:PORT) asks for one. With no
relay configured, gw starts one on 127.0.0.1 and prints tcp://127.0.0.1:<port>.

The traffic policy's on_tcp_connect phase (restrict-ips, deny, log) runs for each new
connection; --cidr-allow and --cidr-deny are its shorthands.`

  static override examples = [
    '<%= config.bin %> tcp 22',
    '<%= config.bin %> tcp localhost:5432 --url tcp://tunnel.example.com:20001 --relay https://tunnel.example.com',
    '<%= config.bin %> tcp 22 --cidr-allow 203.0.113.0/24',
  ]

  static override args = {
    upstream: Args.string({ required: true, description: 'the local service: a port (22) or host:port (localhost:5432)' }),
  }

  static override flags = {
    ...sharedTunnelFlags,
    url: Flags.string({ description: 'the public address to ask for: tcp://HOST:PORT (HOST is the relay\'s; the port is what is asked for)', exclusive: ['remote-addr'] }),
    'remote-addr': Flags.string({ description: 'the public address to ask for, HOST:PORT (ngrok\'s older flag; same as --url tcp://HOST:PORT)' }),
    'pooling-enabled': Flags.boolean({ description: 'share the port with other agents of the same authtoken that pass --pooling-enabled', default: false }),
    binding: Flags.string({ description: 'who can reach the endpoint: public, or internal with --url tcp://<name>.internal:<port> (kubernetes is refused, with the reason)' }),
    'policy-file': Flags.string({ description: 'traffic policy file with on_tcp_connect rules (ngrok\'s format); also --traffic-policy-file', aliases: ['traffic-policy-file'] }),
    'cidr-allow': Flags.string({ description: 'allow only connections from these client CIDRs (repeatable)', multiple: true }),
    'cidr-deny': Flags.string({ description: 'refuse connections from these client CIDRs (repeatable)', multiple: true }),
    'print-policy': Flags.boolean({ description: 'print the effective traffic policy and exit', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Tcp)
    try {
      parseTcpUpstream(args.upstream)
      if (flags.binding !== undefined) checkBinding(flags.binding, '--binding', true)
      const shorthands: PolicyShorthands = {
        ...(flags['cidr-allow'] ? { cidrAllow: flags['cidr-allow'] } : {}),
        ...(flags['cidr-deny'] ? { cidrDeny: flags['cidr-deny'] } : {}),
      }
      const policyInput = { shorthands, kind: 'tcp' as const, ...(flags['policy-file'] ? { file: flags['policy-file'] } : {}) }
      if (flags['print-policy']) {
        this.log(stringify(effectivePolicy(policyInput)).trimEnd())
        return
      }
      // `--url tcp://camera.internal:22`: an internal endpoint (ngrok infers the binding from the URL),
      // reached by forward-internal in on_tcp_connect from this agent and the agents of its authtoken on the relay.
      const internalHost = flags.url !== undefined ? parseRawInternalUrl(flags.url, 'tcp', '--url') : undefined
      if (flags.binding === 'internal' && internalHost === undefined) {
        throw new CliError('GW_ERR_INVALID_FLAG', `--binding internal needs --url tcp://<name>.internal:<port>${flags.url === undefined ? '' : `, got ${JSON.stringify(flags.url)}`}: forward-internal finds it by that URL`)
      }
      if (internalHost !== undefined) {
        const clash = flags.binding === 'public' ? '--binding public' : flags['pooling-enabled'] ? '--pooling-enabled' : flags['remote-addr'] !== undefined ? '--remote-addr' : undefined
        if (clash) throw new CliError('GW_ERR_INVALID_FLAG', `--url ${JSON.stringify(flags.url)} is an internal endpoint, which is not on the relay's public side; drop ${clash}`)
        await runTunnels(this, flags as TunnelFlags, [{ name: 'command_line', proto: 'tcp', upstream: args.upstream, policyInput, internalHost }])
        return
      }
      const remotePort = flags.url !== undefined
        ? parseTcpEndpointUrl(flags.url, '--url')
        : flags['remote-addr'] !== undefined ? parseTcpEndpointUrl(flags['remote-addr'], '--remote-addr') : undefined
      await runTunnels(this, flags as TunnelFlags, [
        {
          name: 'command_line',
          proto: 'tcp',
          upstream: args.upstream,
          policyInput,
          ...(remotePort !== undefined ? { remotePort } : {}),
          ...(flags['pooling-enabled'] ? { pooling: true } : {}),
        },
      ])
    } catch (err) {
      throw toCliError(err)
    }
  }
}
