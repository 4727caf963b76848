import { Args, Flags } from '@oclif/core'
import { stringify } from 'yaml'
import { GwCommand } from '../cli/gw-command.js'
import { runTunnels, sharedTunnelFlags, type TunnelFlags } from '../tunnel-runner.js'
import { parseTcpUpstream } from '../upstream/index.js'
import { toCliError } from '../output/cli-error.js'
import { CliError } from '../errors.js'
import { checkBinding } from '../config/endpoint-url.js'
import { parseRawInternalUrl, parseTlsEndpointUrl } from '../config/tcp-endpoint-url.js'
import { effectivePolicy } from '../endpoint-policy.js'
import type { PolicyShorthands } from '../policy/index.js'

export default class Tls extends GwCommand {
  static override summary = 'Put a local TLS service on a public name, without decrypting it'
  static override description = `Forwards tls://<name>.<domain> to UPSTREAM on this machine. The relay reads only
the server name (SNI) of each TLS handshake on its HTTPS port and passes the connection,
still encrypted, to this agent, which passes it to UPSTREAM: the local service holds
the certificate and the private key, and neither the relay nor the agent can read the
traffic.

The traffic policy's on_tcp_connect phase (restrict-ips, deny, log) runs for each new
connection; --cidr-allow and --cidr-deny are its shorthands.`

  static override examples = [
    '<%= config.bin %> tls 443',
    '<%= config.bin %> tls localhost:8443 --url tls://app.tunnel.example.com --relay https://tunnel.example.com',
  ]

  static override args = {
    upstream: Args.string({ required: true, description: 'the local TLS service: a port (443) or host:port (localhost:8443)' }),
  }

  static override flags = {
    ...sharedTunnelFlags,
    url: Flags.string({ description: 'the public name to ask for: tls://app.tunnel.example.com, app.tunnel.example.com or app', aliases: ['domain', 'hostname'] }),
    subdomain: Flags.string({ description: 'the public name to ask for (random when omitted)', exclusive: ['url'] }),
    'pooling-enabled': Flags.boolean({ description: 'share the name with other agents of the same authtoken that pass --pooling-enabled', default: false }),
    binding: Flags.string({ description: 'who can reach the endpoint: public, or internal with --url tls://<name>.internal (kubernetes is refused, with the reason)' }),
    'policy-file': Flags.string({ description: 'traffic policy file with on_tcp_connect rules (ngrok\'s format); also --traffic-policy-file', aliases: ['traffic-policy-file'] }),
    'cidr-allow': Flags.string({ description: 'allow only connections from these client CIDRs (repeatable)', multiple: true }),
    'cidr-deny': Flags.string({ description: 'refuse connections from these client CIDRs (repeatable)', multiple: true }),
    'print-policy': Flags.boolean({ description: 'print the effective traffic policy and exit', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Tls)
    try {
      parseTcpUpstream(args.upstream)
      if (flags.binding !== undefined) checkBinding(flags.binding, '--binding', true)
      const shorthands: PolicyShorthands = {
        ...(flags['cidr-allow'] ? { cidrAllow: flags['cidr-allow'] } : {}),
        ...(flags['cidr-deny'] ? { cidrDeny: flags['cidr-deny'] } : {}),
      }
      const policyInput = { shorthands, kind: 'tls' as const, ...(flags['policy-file'] ? { file: flags['policy-file'] } : {}) }
      if (flags['print-policy']) {
        this.log(stringify(effectivePolicy(policyInput)).trimEnd())
        return
      }
      // `--url tls://camera.internal`: an internal endpoint (ngrok infers the binding from the URL),
      // reached by forward-internal in on_tcp_connect from this agent and the agents of its authtoken on the relay.
      const internalHost = flags.url !== undefined ? parseRawInternalUrl(flags.url, 'tls', '--url') : undefined
      if (flags.binding === 'internal' && internalHost === undefined) {
        throw new CliError('GW_ERR_INVALID_FLAG', `--binding internal needs --url tls://<name>.internal${flags.url === undefined ? '' : `, got ${JSON.stringify(flags.url)}`}: forward-internal finds it by that URL`)
      }
      if (internalHost !== undefined) {
        const clash = flags.binding === 'public' ? '--binding public' : flags['pooling-enabled'] ? '--pooling-enabled' : flags.subdomain !== undefined ? '--subdomain' : undefined
        if (clash) throw new CliError('GW_ERR_INVALID_FLAG', `--url ${JSON.stringify(flags.url)} is an internal endpoint, which is not on the relay's public side; drop ${clash}`)
        await runTunnels(this, flags as TunnelFlags, [{ name: 'command_line', proto: 'tls', upstream: args.upstream, policyInput, internalHost }])
        return
      }
      const asked = flags.url !== undefined ? parseTlsEndpointUrl(flags.url, '--url') : undefined
      const publicName = flags.subdomain ?? asked?.publicName
      await runTunnels(this, flags as TunnelFlags, [
        {
          name: 'command_line',
          proto: 'tls',
          upstream: args.upstream,
          policyInput,
          ...(publicName ? { publicName } : {}),
          ...(asked?.publicHost ? { publicHost: asked.publicHost } : {}),
          ...(flags['pooling-enabled'] ? { pooling: true } : {}),
        },
      ])
    } catch (err) {
      throw toCliError(err)
    }
  }
}
