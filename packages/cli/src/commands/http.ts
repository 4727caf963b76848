import { Args, Flags } from '@oclif/core'
import { GwCommand } from '../cli/gw-command.js'
import { stringify } from 'yaml'
import { runTunnels, sharedTunnelFlags, type TunnelFlags } from '../tunnel-runner.js'
import { parseUpstream } from '../upstream/address.js'
import { toCliError } from '../output/cli-error.js'
import { checkBinding, parseEndpointUrl } from '../config/endpoint-url.js'
import { upstreamProtocol } from '../config/endpoint-spec.js'
import { effectivePolicy } from '../endpoint-policy.js'
import type { PolicyShorthands } from '../policy/index.js'
import { CliError } from '../errors.js'

export default class Http extends GwCommand {
  static override summary = 'Put a local HTTP service on a public URL'
  static override description = `Forwards a public URL on the relay to UPSTREAM on this machine.

With no relay configured (--relay, GW_RELAY or the config file), gw starts a relay on
127.0.0.1 that serves http://<name>.localhost:<port>: reachable from this machine only.

The traffic policy (authentication, rate limits, routing…) comes from --policy-file
and the shorthand flags; --print-policy shows the rules they make.`

  static override examples = [
    '<%= config.bin %> http 3000',
    '<%= config.bin %> http localhost:8080 --subdomain myapp',
    '<%= config.bin %> http 3000 --url https://myapp.tunnel.example.com --relay https://tunnel.example.com',
    '<%= config.bin %> http https://localhost:8443 --relay https://tunnel.example.com',
    '<%= config.bin %> http 3000 --basic-auth admin:s3cret --rate-limit 100/60s --route /api=3001',
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
    url: Flags.string({ description: 'the public URL or host to ask for: myapp, myapp.tunnel.example.com or https://myapp.tunnel.example.com', aliases: ['domain', 'hostname'] }),
    'pooling-enabled': Flags.boolean({ description: 'share the URL with other agents that pass --pooling-enabled (the relay spreads requests over them)', default: false }),
    'relay-cache': Flags.boolean({ description: 'let the relay answer from its shared HTTP cache (RFC 9111), when it keeps one (gw relay --relay-cache); refused with on_http_request rules, which a cached answer would skip', default: false }),
    binding: Flags.string({ description: 'who can reach the endpoint: public (the default), or internal with --url https://<name>.internal (kubernetes is refused)' }),
    oauth: Flags.string({ description: 'ngrok\'s managed-app login: refused (write an oauth rule with your own app instead)' }),
    'upstream-protocol': Flags.string({ description: 'what to speak to the upstream: http1, or http2 (h2c; h2 over TLS for an https upstream; for gRPC)', default: 'http1' }),
    'host-header': Flags.string({ description: 'rewrite the Host header: "rewrite" for the upstream\'s host, or a value' }),
    'policy-file': Flags.string({ description: 'traffic policy file (YAML or JSON, ngrok\'s format); also --traffic-policy-file', aliases: ['traffic-policy-file'] }),
    'basic-auth': Flags.string({ description: 'require HTTP basic auth, user:password (repeatable)', multiple: true }),
    'cidr-allow': Flags.string({ description: 'allow only these client CIDRs (repeatable)', multiple: true }),
    'cidr-deny': Flags.string({ description: 'deny these client CIDRs (repeatable)', multiple: true }),
    'rate-limit': Flags.string({ description: 'requests per window per client IP, e.g. 100/60s' }),
    'jwt-issuer': Flags.string({ description: 'require a JWT from this issuer (keys by OpenID discovery)' }),
    'jwt-audience': Flags.string({ description: 'the audience the JWT must carry', dependsOn: ['jwt-issuer'] }),
    'api-key-file': Flags.string({ description: 'require an API key from this file (one per line: key or sha256:<hex>)' }),
    route: Flags.string({ description: 'send a path prefix to another upstream, e.g. /api=3001 (longest prefix wins; repeatable)', multiple: true }),
    'print-policy': Flags.boolean({ description: 'print the effective traffic policy and exit', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Http)
    try {
      parseUpstream(args.upstream)
      const protocol = upstreamProtocol(flags['upstream-protocol'], '--upstream-protocol', 'GW_ERR_INVALID_FLAG')
      if (flags.binding !== undefined) checkBinding(flags.binding, '--binding', true)
      if (flags.oauth !== undefined) {
        // ngrok's --oauth logs users in with ngrok's managed OAuth app, which only ngrok's cloud has;
        // gw's oauth action needs the user's own app, so the flag is refused with what to write instead.
        throw new CliError('GW_ERR_INVALID_FLAG', `--oauth ${flags.oauth}: ngrok's --oauth uses ngrok's managed ${flags.oauth} app, which exists only in ngrok's cloud; ` +
          `register your own OAuth app and write an oauth rule with its client_id and client_secret in --traffic-policy-file (docs/policy.md#oauth)`)
      }
      const shorthands: PolicyShorthands = {
        ...(flags['basic-auth'] ? { basicAuth: flags['basic-auth'] } : {}),
        ...(flags['cidr-allow'] ? { cidrAllow: flags['cidr-allow'] } : {}),
        ...(flags['cidr-deny'] ? { cidrDeny: flags['cidr-deny'] } : {}),
        ...(flags['rate-limit'] ? { rateLimit: flags['rate-limit'] } : {}),
        ...(flags['jwt-issuer'] ? { jwtIssuer: flags['jwt-issuer'] } : {}),
        ...(flags['jwt-audience'] ? { jwtAudience: flags['jwt-audience'] } : {}),
        ...(flags['api-key-file'] ? { apiKeyFile: flags['api-key-file'] } : {}),
        ...(flags.route ? { route: flags.route } : {}),
      }
      const policyInput = { shorthands, ...(flags['policy-file'] ? { file: flags['policy-file'] } : {}) }
      if (flags['print-policy']) {
        this.log(stringify(effectivePolicy(policyInput)).trimEnd())
        return
      }
      const asked = flags.url !== undefined ? parseEndpointUrl(flags.url, '--url') : undefined
      // An internal endpoint (ngrok infers the binding from the URL): this agent serves it
      // to the agents of its authtoken on the relay, and has no public URL.
      if (flags.binding === 'internal' && !asked?.internalHost) {
        throw new CliError('GW_ERR_INVALID_FLAG', `--binding internal needs --url https://<name>.internal${flags.url === undefined ? '' : `, got ${JSON.stringify(flags.url)}`}: forward-internal and http-request find it by that URL`)
      }
      if (asked?.internalHost) {
        const clash = flags.binding === 'public' ? '--binding public' : flags.subdomain !== undefined ? '--subdomain' : flags['pooling-enabled'] ? '--pooling-enabled' : flags['relay-cache'] ? '--relay-cache' : undefined
        if (clash) throw new CliError('GW_ERR_INVALID_FLAG', `--url ${JSON.stringify(flags.url)} is an internal endpoint, which has no public name and is not on the relay's public side; drop ${clash}`)
      }
      const publicName = flags.subdomain ?? asked?.publicName
      await runTunnels(this, flags as TunnelFlags, [
        {
          name: 'command_line',
          upstream: args.upstream,
          ...(protocol === 'http2' ? { upstreamProtocol: 'http2' as const } : {}),
          policyInput,
          ...(publicName ? { publicName } : {}),
          ...(asked?.internalHost ? { internalHost: asked.internalHost } : {}),
          ...(asked?.publicHost ? { publicHost: asked.publicHost } : {}),
          ...(flags['pooling-enabled'] ? { pooling: true } : {}),
          ...(flags['relay-cache'] ? { relayCache: true } : {}),
          ...(flags['host-header'] ? { hostHeader: flags['host-header'] } : {}),
        },
      ])
    } catch (err) {
      throw toCliError(err)
    }
  }
}
