/**
 * `req.user_agent.*`: the User-Agent header parsed into ngrok's fields (name, version,
 * os, os_version, device, is_mobile, is_tablet, is_desktop, is_bot, url).
 *
 * ngrok's field list is that of the Go library mileusna/useragent, so the names follow
 * its vocabulary (`macOS`, `Safari` for mobile Safari, `Internet Explorer`). Browsers and
 * operating systems come from ua-parser-js 1.x (MIT; 2.x is AGPL), bots from isbot,
 * which ua-parser-js 1.x does not detect. A bot or tool that ua-parser-js does not name
 * (`GPTBot/1.0`, `curl/8.5.0`) is named by its first product token that is not one of
 * the generic ones every browser sends, as mileusna/useragent does.
 */
import UAParser from 'ua-parser-js'
import { isbot } from 'isbot'

/** ua-parser-js's names → the names ngrok documents. */
const OS_NAMES: Record<string, string> = {
  'Mac OS': 'macOS',
  'Chromium OS': 'ChromeOS',
  'Chrome OS': 'ChromeOS',
}
const BROWSER_NAMES: Record<string, string> = {
  'Mobile Safari': 'Safari',
  'Mobile Firefox': 'Firefox',
  'Chrome Headless': 'HeadlessChrome',
  'Chrome WebView': 'Chrome',
  IE: 'Internet Explorer',
  'Opera Mini': 'Opera Mini',
}
/** Layout engines that ua-parser-js reports when it knows no browser: not a name. */
const ENGINE_ONLY = new Set(['WebKit', 'Mozilla', 'Gecko'])
const GENERIC_TOKENS = new Set(['mozilla', 'applewebkit', 'khtml', 'gecko', 'compatible', 'safari', 'version', 'mobile', 'like'])
const DESKTOP_OS = new Set(['Windows', 'macOS', 'Linux', 'ChromeOS', 'FreeBSD', 'Ubuntu', 'Debian', 'Fedora'])

/** The first `Name/version` product token that is not a generic one. */
function productToken(ua: string): { name: string; version: string } | undefined {
  for (const m of ua.matchAll(/([A-Za-z][\w.-]*)\/([\w.]+)/g)) {
    if (!GENERIC_TOKENS.has(m[1]!.toLowerCase())) return { name: m[1]!, version: m[2]! }
  }
  return undefined
}

export class UserAgentVars {
  /** The header as sent: what `req.user_agent` is as a string. */
  readonly _gw_s: string
  readonly name: string
  readonly version: string
  readonly os: string
  readonly os_version: string
  readonly device: string
  readonly is_mobile: boolean
  readonly is_tablet: boolean
  readonly is_desktop: boolean
  readonly is_bot: boolean
  readonly url: string

  constructor(header: string) {
    this._gw_s = header
    const r = new UAParser(header).getResult()
    this.is_bot = header !== '' && isbot(header)
    let name = r.browser.name ?? ''
    let version = r.browser.version ?? ''
    if (name === '' || ENGINE_ONLY.has(name) || this.is_bot) {
      const token = productToken(header)
      if (token) ({ name, version } = token)
      else if (ENGINE_ONLY.has(name)) name = version = ''
    }
    this.name = BROWSER_NAMES[name] ?? name
    this.version = version
    const os = r.os.name ?? ''
    this.os = OS_NAMES[os] ?? os
    this.os_version = r.os.version ?? ''
    this.device = r.device.model ?? ''
    this.is_mobile = r.device.type === 'mobile'
    this.is_tablet = r.device.type === 'tablet'
    this.is_desktop = !this.is_mobile && !this.is_tablet && !this.is_bot && DESKTOP_OS.has(this.os)
    this.url = /\+?(https?:\/\/[^\s;)]+)/.exec(header)?.[1] ?? ''
  }

  toString(): string {
    return this._gw_s
  }
  toJSON(): string {
    return this._gw_s
  }
}
