// The IPC commands every bench child answers:
//   {type:'gc'}                          full GC (children run with --expose-gc)
//   {type:'heap'}                        → {type:'heap', ...process.memoryUsage()}
//   {type:'cpu'}                         → {type:'cpu', ...process.cpuUsage()} (µs)
//   {type:'handles'}                     → {type:'handles', count, kinds} (active handles and requests)
//   {type:'profile-start'}               start the V8 CPU profiler
//   {type:'profile-stop', file}          stop it and write a .cpuprofile → {type:'profile-written', file}
//   {type:'heap-snapshot', file}         write a V8 heap snapshot → {type:'heap-snapshot-written', file}
// Profiling through the inspector, rather than --cpu-prof, covers only the load of one
// scenario and path, not start-up and the other paths' turns.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { writeHeapSnapshot } from 'node:v8'

let session

function post(method, params = {}) {
  return new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))))
}

export function answerControl() {
  process.on('message', async (m) => {
    switch (m?.type) {
      case 'gc':
        globalThis.gc?.()
        break
      case 'heap':
        process.send?.({ type: 'heap', ...process.memoryUsage() })
        break
      case 'cpu':
        process.send?.({ type: 'cpu', ...process.cpuUsage() })
        break
      case 'handles': {
        const kinds = {}
        for (const k of process.getActiveResourcesInfo()) kinds[k] = (kinds[k] ?? 0) + 1
        process.send?.({ type: 'handles', count: Object.values(kinds).reduce((a, b) => a + b, 0), kinds })
        break
      }
      case 'heap-snapshot':
        process.send?.({ type: 'heap-snapshot-written', file: writeHeapSnapshot(m.file) })
        break
      case 'profile-start':
        session ??= new Session()
        session.connect?.()
        await post('Profiler.enable')
        await post('Profiler.setSamplingInterval', { interval: 250 })
        await post('Profiler.start')
        process.send?.({ type: 'profile-started' })
        break
      case 'profile-stop': {
        const { profile } = await post('Profiler.stop')
        writeFileSync(m.file, JSON.stringify(profile))
        session.disconnect()
        session = undefined
        process.send?.({ type: 'profile-written', file: m.file })
        break
      }
    }
  })
}
