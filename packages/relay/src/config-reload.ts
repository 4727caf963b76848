/**
 * Reloading the relay's config file: on SIGHUP (the CLI wires the signal) or when the
 * file changes (fs.watch on its directory, so editors and config managers that replace
 * the file by a rename are seen too, with a debounce).
 *
 * A reload takes tokens, limits and the TLS certificate; connections stay up. A file
 * that does not validate is refused with one log line, and the running config stays.
 * Settings that only apply at start (domain, ports…) are reported as needing a restart.
 */
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { loadRelayConfig, type RelayFileConfig } from './config-file.js'
import type { LogFn } from './options.js'
import type { Relay } from './relay.js'

export interface ConfigReloader {
  /** Read the file again and apply it; false when it was refused. */
  reload(source: string): Promise<boolean>
  /** The config in force: the last file that loaded. */
  current(): RelayFileConfig
  close(): void
}

export interface ReloaderOptions {
  /** Watch the file for changes (default true). */
  watch?: boolean
  debounceMs?: number
  /** The certificate given by flags, used when the file has no `tls`. */
  tlsCert?: string
  tlsKey?: string
  env?: NodeJS.ProcessEnv
}

const START_ONLY = ['domain', 'host', 'httpPort', 'httpsPort', 'publicHttpPort', 'publicHttpsPort', 'stateDir', 'allowAnonymous',
  'metricsAddr', 'accessLog', 'maxHeaderSize', 'maxStreamsPerAgent', 'relayCache', 'customDomains', 'dnsServer'] as const

export function startConfigReloader(relay: Relay, path: string, initial: RelayFileConfig, log: LogFn, options: ReloaderOptions = {}): ConfigReloader {
  let running: RelayFileConfig = initial
  let chain: Promise<unknown> = Promise.resolve()

  const apply = async (source: string): Promise<boolean> => {
    let next: RelayFileConfig
    try {
      next = loadRelayConfig(path, options.env ?? process.env)
      const tlsCert = next.settings.tlsCert ?? options.tlsCert
      const tlsKey = next.settings.tlsKey ?? options.tlsKey
      await relay.reload({ tokens: next.tokens, limits: next.limits, ...(tlsCert && tlsKey ? { tlsCert, tlsKey } : {}) })
    } catch (err) {
      const message = (err as Error).message
      log('error', 'config reload refused; the running config stays', { source, error: message, code: (err as { code?: string }).code })
      relay.events.emit('config:reload', { result: 'error', source, error: message })
      return false
    }
    const restart = START_ONLY.filter((key) => JSON.stringify(next.settings[key]) !== JSON.stringify(running.settings[key]))
    if (restart.length > 0) {
      log('warn', 'config settings changed that apply only at start; restart the relay for them', { source, settings: restart.join(',') })
    }
    running = { ...next, settings: { ...next.settings, ...Object.fromEntries(restart.map((k) => [k, running.settings[k]])) } }
    log('info', 'config reloaded', { source, tokens: next.tokens.length })
    relay.events.emit('config:reload', { result: 'ok', source })
    return true
  }

  const reload = (source: string): Promise<boolean> => {
    const done = chain.then(() => apply(source))
    chain = done
    return done
  }

  let watcher: FSWatcher | undefined
  let timer: NodeJS.Timeout | undefined
  if (options.watch !== false) {
    const file = basename(path)
    try {
      watcher = watch(dirname(resolve(path)), (_event, name) => {
        if (name !== null && name !== file) return
        clearTimeout(timer)
        timer = setTimeout(() => void reload('file change'), options.debounceMs ?? 250)
      })
      watcher.on('error', (err) => log('warn', 'cannot watch the config file; reload it with SIGHUP', { error: err.message }))
    } catch (err) {
      log('warn', 'cannot watch the config file; reload it with SIGHUP', { error: (err as Error).message })
    }
  }

  return {
    reload,
    current: () => running,
    close() {
      clearTimeout(timer)
      watcher?.close()
    },
  }
}
