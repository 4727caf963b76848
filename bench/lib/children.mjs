// Child processes of the harness: start, wait for their first message, read their memory
// from /proc, stop. Every child is started by the harness and stopped by pid.
import { fork, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const benchDir = fileURLToPath(new URL('..', import.meta.url))
export const rootDir = fileURLToPath(new URL('../..', import.meta.url))

const live = new Set()

/** Count a child started elsewhere among those stopAll() stops. */
export function track(child) {
  live.add(child)
  child.on('exit', () => live.delete(child))
  return child
}

/**
 * Fork one of bench/procs/*.mjs and wait for its first IPC message, which is either
 * `{type:'ready', …}` or `{type:'unavailable', reason}`.
 */
export function startProc(script, args = [], { timeoutMs = 30_000, execArgv = [], env } = {}) {
  const child = fork(new URL(`../procs/${script}`, import.meta.url), args, {
    cwd: rootDir,
    ...(env ? { env: { ...process.env, ...env } } : {}),
    execArgv: ['--expose-gc', ...execArgv],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  })
  live.add(child)
  child.on('exit', () => live.delete(child))
  let stderr = ''
  child.stderr.on('data', (d) => { if (stderr.length < 4000) stderr += d })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stopChild(child)
      reject(new Error(`${script} did not start within ${timeoutMs} ms${stderr ? `: ${stderr.trim().slice(0, 300)}` : ''}`))
    }, timeoutMs)
    child.once('message', (message) => {
      clearTimeout(timer)
      resolve({ child, pid: child.pid, message, stderr: () => stderr })
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${script} exited with ${code} before it was ready${stderr ? `: ${stderr.trim().slice(0, 300)}` : ''}`))
    })
  })
}

/** Spawn a non-IPC command and wait until `matcher` finds what it needs in its output. */
export function startCommand(command, args, { env = {}, timeoutMs = 30_000, matcher, immediate = false }) {
  // stdin stays an open pipe: script(1) passes EOF on to a terminal UI, which then quits.
  const child = spawn(command, args, { cwd: rootDir, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
  live.add(child)
  child.on('exit', () => live.delete(child))
  let output = ''
  if (immediate) {
    child.stdout.resume()
    child.stderr.resume()
    return Promise.resolve({ child, pid: child.pid, found: true })
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stopChild(child)
      reject(new Error(`${command} did not start within ${timeoutMs} ms: ${output.trim().slice(0, 300)}`))
    }, timeoutMs)
    const onData = (d) => {
      if (output.length < 16_000) output += d
      const found = matcher(output)
      if (found !== undefined) {
        clearTimeout(timer)
        child.stdout.off('data', onData)
        child.stderr.off('data', onData)
        // Keep draining so a chatty child never blocks on a full pipe.
        child.stdout.resume()
        child.stderr.resume()
        resolve({ child, pid: child.pid, found })
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${command} exited with ${code}: ${output.trim().slice(0, 300)}`))
    })
  })
}

export function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    child.once('exit', () => { clearTimeout(timer); resolve() })
    if (child.connected) child.disconnect()
    else child.kill('SIGTERM')
    // A child that ignores disconnect still ends.
    setTimeout(() => { if (child.exitCode === null) child.kill('SIGTERM') }, 1500).unref()
  })
}

export async function stopAll() {
  await Promise.all([...live].map(stopChild))
}

/** Resident set size and its peak (VmHWM), in bytes, from /proc. */
export function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
    return { rss: kib('VmRSS'), peak: kib('VmHWM') }
  } catch {
    return { rss: NaN, peak: NaN }
  }
}

/** Reset a process's peak RSS so VmHWM covers only what follows (Linux ≥ 4.0). */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** Ask forked children to run a full GC, then give them a moment to do it. */
export async function collectGarbage(children, settleMs = 200) {
  for (const c of children) if (c?.connected) c.send({ type: 'gc' })
  await new Promise((r) => setTimeout(r, settleMs))
}

/** Sample RSS of some pids every `everyMs` until stopped; returns the max per pid. */
export function sampleRss(pids, everyMs = 100) {
  const max = new Map(pids.map((p) => [p, 0]))
  const series = []
  const tick = () => {
    const row = { t: Date.now() }
    for (const p of pids) {
      const { rss } = memoryOf(p)
      row[p] = rss
      if (rss > max.get(p)) max.set(p, rss)
    }
    series.push(row)
  }
  tick()
  const timer = setInterval(tick, everyMs)
  return {
    stop() { clearInterval(timer); tick(); return { max, series } },
  }
}

/** CPU time (user + system) a process has used so far, in µs, from /proc (works for any pid). */
export function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6
  } catch {
    return NaN
  }
}

/** Send a control message to a forked child and wait for its reply of `replyType`. */
export function ask(child, message, replyType, timeoutMs = 10_000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.off('message', on); resolve(undefined) }, timeoutMs)
    const on = (m) => { if (m?.type === replyType) { clearTimeout(timer); child.off('message', on); resolve(m) } }
    child.on('message', on)
    child.send(message)
  })
}
