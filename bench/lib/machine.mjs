// What the figures were measured on. Load average is recorded because these machines are
// shared: a run taken while someone else's tests ran reads differently.
import { execFileSync } from 'node:child_process'
import os from 'node:os'

export function machineInfo() {
  const cpus = os.cpus()
  let commit
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim() } catch {}
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    totalMemory: os.totalmem(),
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    commit,
  }
}
