// gw as the README tells a user to run it: `gw relay …` and `gw http …` from the built CLI
// (packages/cli/bin/run.js), with its defaults: capture on, the agent API on 127.0.0.1:4040
// (or the next free port), and one JSON log line per request (`--no-tui --log-format json`),
// written to a file as a user redirecting the output would.
//
// Each process is started with an IPC channel and `--import procs/cli-control.mjs`, which
// only answers the harness's control messages (full GC, heap figures, the V8 profiler;
// procs/control.mjs) so that scenarios 4–6 can read these processes as they read the
// programmatic ones. Nothing of the CLI's own code path changes.
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { rootDir, startProc, stopChild, track } from './children.mjs'

const CONTROL = pathToFileURL(join(rootDir, 'bench/procs/cli-control.mjs')).href

/** The CLI's bin: the built tree's, or a variant's copy (bench/experiments/make-variant.mjs). */
export function cliBin(variantDir) {
  return variantDir ? join(variantDir, 'cli/bin/run.js') : join(rootDir, 'packages/cli/bin/run.js')
}

/**
 * Spawn `node <bin> <args>` with its stdout and stderr going to `logFile`, and wait until
 * a JSON line of the log satisfies `ready`. Resolves with the child and that line.
 */
function startLogged({ bin, args, execArgv = [], logFile, ready, timeoutMs = 60_000, what }) {
  const fd = openSync(logFile, 'w')
  const child = spawn(process.execPath, ['--expose-gc', '--import', CONTROL, ...execArgv, bin, ...args], {
    cwd: rootDir,
    stdio: ['ignore', fd, fd, 'ipc'],
  })
  closeSync(fd)
  track(child)
  const lines = () => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').filter(Boolean)
    } catch {
      return []
    }
  }
  return new Promise((resolve, reject) => {
    let timer
    const poll = setInterval(() => {
      for (const line of lines()) {
        let obj
        try { obj = JSON.parse(line) } catch { continue }
        if (ready(obj)) {
          clearInterval(poll)
          clearTimeout(timer)
          child.off('exit', onExit)
          resolve({ child, pid: child.pid, line: obj })
          return
        }
      }
    }, 100)
    const fail = (why) => {
      clearInterval(poll)
      clearTimeout(timer)
      reject(new Error(`${what} ${why}: ${lines().slice(-3).join(' ').slice(0, 400)}`))
    }
    const onExit = (code) => fail(`exited with ${code}`)
    timer = setTimeout(() => { stopChild(child); fail(`did not start within ${timeoutMs} ms`) }, timeoutMs)
    child.once('exit', onExit)
  })
}

/**
 * `gw relay --workers 1 --domain localhost --host 127.0.0.1 --http-port 0 --https-port 0 --log-format json`
 * (+ extraArgs, such as `--tcp-ports 20000-20000` for scenario 10). One process (not the
 * default one per core): the figures stay comparable with earlier runs, and the CPU per
 * process and --cpu-prof are the relay's, not an idle primary's.
 */
export async function startCliRelay({ execArgv = [], variantDir, extraArgs = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-cli-relay-'))
  try {
    const { child, line } = await startLogged({
      bin: cliBin(variantDir),
      args: ['relay', '--workers', '1', '--domain', 'localhost', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '0',
        '--state-dir', join(dir, 'state'), '--log-format', 'json', ...extraArgs],
      execArgv,
      logFile: join(dir, 'relay.log'),
      ready: (o) => o.msg === 'relay started',
      what: 'gw relay',
    })
    const caCertPem = line.ca && existsSync(line.ca) ? readFileSync(line.ca, 'utf8') : undefined
    return {
      child,
      pid: child.pid,
      dir,
      httpPort: line.http_port,
      httpsPort: line.https_port,
      httpUrl: `http://127.0.0.1:${line.http_port}`,
      caCertPem,
      close: async () => { await stopChild(child); rmSync(dir, { recursive: true, force: true }) },
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/** `gw http <upstream> --relay <url> --subdomain <name> --no-tui --log-format json` (+ extraArgs). */
export function startCliHttp({ upstreamUrl, relayUrl, name, extraArgs = [], execArgv = [], variantDir }) {
  return startCliAgent({ command: 'http', upstream: upstreamUrl, relayUrl, args: ['--subdomain', name, ...extraArgs], execArgv, variantDir })
}

/**
 * `gw tcp <upstream> --relay <url> --no-tui --log-format json` (+ extraArgs): the port comes
 * from the relay's --tcp-ports range; `url` is the tcp://host:port the agent printed.
 */
export function startCliTcp({ upstream, relayUrl, extraArgs = [], execArgv = [], variantDir }) {
  return startCliAgent({ command: 'tcp', upstream, relayUrl, args: extraArgs, execArgv, variantDir })
}

/** `gw <command> <upstream> --relay <url> --no-tui --log-format json --config <own file> …args`. */
async function startCliAgent({ command, upstream, relayUrl, args = [], execArgv = [], variantDir }) {
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-cli-agent-'))
  try {
    const { child, line } = await startLogged({
      bin: cliBin(variantDir),
      // A config file of its own: the agent's id and saved settings are not the user's.
      args: [command, upstream, '--relay', relayUrl, '--no-tui', '--log-format', 'json',
        '--config', join(dir, 'gw.yml'), ...args],
      execArgv,
      logFile: join(dir, 'agent.log'),
      ready: (o) => o.msg === 'started tunnel',
      what: `gw ${command}`,
    })
    return { child, pid: child.pid, dir, url: line.url, logFile: join(dir, 'agent.log'), close: async () => { await stopChild(child); rmSync(dir, { recursive: true, force: true }) } }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/**
 * A CLI relay and a CLI agent named `name`, in the shape startGw (paths.mjs) returns.
 * `bare: true` puts the programmatic agent (procs/agents.mjs, startAgent: no capture, no
 * request log, no agent API) in front of the same kind of relay instead.
 */
export async function startGwCli(upstreamUrl, { name = 'bench', relayExecArgv = [], agentExecArgv = [], variantDir, relay: shared, extraArgs = [] } = {}) {
  let relay = shared
  try {
    relay ??= await startCliRelay({ execArgv: relayExecArgv, variantDir })
  } catch (err) {
    return { available: false, reason: err.message.split('\n')[0], close: async () => {} }
  }
  const closeRelay = shared ? async () => {} : relay.close
  let agent
  try {
    agent = await startCliHttp({ upstreamUrl, relayUrl: relay.httpUrl, name, execArgv: agentExecArgv, variantDir, extraArgs })
  } catch (err) {
    await closeRelay()
    return { available: false, reason: err.message.split('\n')[0], close: async () => {} }
  }
  return {
    available: true,
    relay,
    procs: [
      { role: 'relay', pid: relay.pid, child: relay.child },
      { role: 'agent', pid: agent.pid, child: agent.child },
    ],
    close: async () => { await agent.close(); await closeRelay() },
  }
}

/** The programmatic agent (startAgent) on an already running relay. */
export async function startBareAgent(upstreamUrl, relay, { name = 'bare', execArgv = [], variantDir } = {}) {
  const env = variantDir ? { GW_BENCH_AGENT_DIST: join(variantDir, 'cli/dist') } : undefined
  const agent = await startProc('agents.mjs', [relay.httpUrl, upstreamUrl, name, '1'], { execArgv, env })
  if (agent.message.type !== 'ready') {
    await stopChild(agent.child)
    return { available: false, reason: `agent: ${agent.message.reason}`, close: async () => {} }
  }
  return {
    available: true,
    relay,
    procs: [
      { role: 'relay', pid: relay.pid, child: relay.child },
      { role: 'agent', pid: agent.child.pid, child: agent.child },
    ],
    close: async () => { await stopChild(agent.child) },
  }
}
