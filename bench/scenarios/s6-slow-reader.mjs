// Scenario 6: a client that reads a large download at 1 MiB/s while the upstream could send
// at memory speed. With flow control end to end, the relay and the agent hold at most a
// window or two per stream; without it they buffer what the upstream sends.
import { ask, collectGarbage, memoryOf, sampleRss } from '../lib/children.mjs'
import { slowRead } from '../lib/http-clients.mjs'
import { fmt, GiB, MiB, verdict } from '../lib/format.mjs'
import { waitRoutable } from '../lib/paths.mjs'

/** The stream window the mux starts with, and the most it may grow to on fast links. */
async function streamWindows() {
  try {
    const mux = await import('@gw/protocol')
    if (Number.isFinite(mux.INITIAL_STREAM_WINDOW)) return { initial: mux.INITIAL_STREAM_WINDOW, max: mux.DEFAULT_MAX_WINDOW }
  } catch {}
  return { initial: 256 * 1024, max: undefined }
}

export default {
  id: 6,
  title: 'Slow reader: a 1 GiB download read at 1 MiB/s',
  target: 'gw: relay + agent memory growth ≤ 2 stream windows (buffers and RSS)',
  columns: [
    { key: 'read', label: 'read', fmt: fmt.mb },
    { key: 'buffersAt1s', label: 'buffers +1 s', fmt: fmt.kib },
    { key: 'buffersGrowth', label: 'buffers + at end', fmt: fmt.kib },
    { key: 'start', label: 'RSS at 1 s', fmt: fmt.mb },
    { key: 'end', label: 'RSS at end', fmt: fmt.mb },
    { key: 'growth', label: 'growth', fmt: fmt.mb },
    { key: 'maxGrowth', label: 'max sampled growth', fmt: fmt.mb },
    { key: 'procsLabel', label: 'processes measured', fmt: fmt.text },
    { key: 'error', label: 'error', fmt: fmt.text },
  ],
  async run({ targets, upstream, profile, log }) {
    const { initial: window, max: maxWindow } = await streamWindows()
    const rows = []
    for (const t of targets.values()) {
      // The anchors' processes are not Node: no GC to ask for, no buffer figures to read.
      if (t.anchor || (profile.fewPaths && !profile.fewPaths.includes(t.name))) continue
      if (!t.available) { rows.push({ path: t.name, unavailable: t.reason }); continue }
      // Direct has no tunnel, so its row watches the upstream: the baseline for "flat".
      const procs = t.procs.length ? t.procs : [{ role: 'upstream', pid: upstream.pid, child: upstream.child }]
      const pids = procs.map((p) => p.pid)
      const rssSum = () => pids.reduce((a, p) => a + memoryOf(p).rss, 0)
      log(`  ${t.name}: ${profile.s6Seconds} s at 1 MiB/s`)
      // A path still busy with an earlier scenario (localtunnel queues behind its 10 sockets)
      // would read nothing and look flat; check it answers first.
      const busy = await waitRoutable(t, 5000).then(() => undefined, (err) => err.message)
      // Earlier scenarios leave garbage and freed pages behind; let that settle first so
      // the heap shrinking is not read as the opposite of growth.
      await collectGarbage(procs.map((p) => p.child))
      await new Promise((res) => setTimeout(res, profile.name === 'smoke' ? 100 : 500))
      let start = NaN
      let end = NaN
      let buffersBefore = NaN
      let buffersStart = NaN
      let buffersEnd = NaN
      // Bytes held in Buffers (process.memoryUsage().arrayBuffers) after a full GC: what a
      // process buffers for a stream lives there, without the allocator's slack that RSS has.
      const perProcess = {}
      // One reading after gc() can include backing stores V8 has not released yet: in
      // consecutive readings at the same moment the relay showed 0.3 MiB, then 3.1 MiB,
      // while a heap snapshot found 273 KiB of live buffers (bench/README.md, F11). The
      // least of three readings, each after its own GC, drops that; a queue really held
      // shows in all three.
      const readBuffers = (p) => (p.child.connected ? ask(p.child, { type: 'heap' }, 'heap', 5000).then((m) => m?.arrayBuffers ?? NaN) : NaN)
      const buffers = async (when) => {
        let sizes = await Promise.all(procs.map(readBuffers))
        for (let i = 0; i < 2; i++) {
          await collectGarbage(procs.map((p) => p.child), 100)
          const again = await Promise.all(procs.map(readBuffers))
          sizes = sizes.map((v, j) => Math.min(v, again[j]))
        }
        procs.forEach((p, i) => { (perProcess[p.role] ??= {})[when] = sizes[i] })
        return sizes.reduce((a, b) => a + b, 0)
      }
      let sampler
      buffersBefore = await buffers('before')
      const r = await slowRead(t, {
        bytes: GiB,
        rate: MiB,
        durationMs: profile.s6Seconds * 1000,
        atStart: async () => {
          await collectGarbage(procs.map((p) => p.child))
          start = rssSum()
          buffersStart = await buffers('start')
          sampler = sampleRss(pids, 250)
        },
        beforeEnd: async () => {
          await collectGarbage(procs.map((p) => p.child))
          end = rssSum()
          buffersEnd = await buffers('end')
        },
      }).catch((err) => ({ error: err.message }))
      const series = sampler?.stop().series ?? []
      const maxSum = series.reduce((m, row) => Math.max(m, pids.reduce((a, p) => a + row[p], 0)), 0)
      rows.push({
        path: t.name,
        read: r.read,
        start,
        end,
        growth: end - start,
        buffersStart,
        buffersEnd,
        // Against the moment before the request. The first second carries the burst that
        // fills every queue on the way; what is still held at the end is the steady state.
        buffersAt1s: buffersStart - buffersBefore,
        buffersGrowth: buffersEnd - buffersBefore,
        buffersByProcess: perProcess,
        maxGrowth: maxSum - start,
        procsLabel: procs.map((p) => p.role).join(' + '),
        error: r.error ?? busy ?? (r.read === 0 ? 'no body bytes arrived: the figures show nothing' : undefined),
      })
      // The abandoned download must be torn down before the next path starts.
      await new Promise((res) => setTimeout(res, profile.name === 'smoke' ? 50 : 300))
    }
    const gw = rows.find((r) => r.path === 'gw-http')
    const direct = rows.find((r) => r.path === 'direct')
    return {
      rows,
      verdicts: [
        verdict(`gw-http relay + agent buffers grow ≤ 2 windows (${fmt.kib(2 * window)})`, Number.isFinite(gw?.buffersGrowth) ? gw.buffersGrowth <= 2 * window : null, fmt.kib(gw?.buffersGrowth)),
        verdict(`gw-http relay + agent RSS grows ≤ 2 windows (${fmt.kib(2 * window)})`, Number.isFinite(gw?.growth) ? gw.growth <= 2 * window : null,
          `${fmt.kib(gw?.growth)}; the direct upstream alone moved ${fmt.kib(direct?.growth)} in the same time, which is the noise floor of RSS`),
      ],
      notes: [
        'Buffers: process.memoryUsage().arrayBuffers after a full GC (the least of three readings, each after its own GC), summed over the processes, 1 s in and at the end, against just before the request; the verdict uses the end. Not available for localtunnel\'s server, which is not a bench child.',
        `Stream window taken as ${fmt.kib(window)} (the initial window${maxWindow ? `; it may grow to ${fmt.mb(maxWindow)} when the window, not the reader, limits speed` : ''}). RSS is read after a full GC in each process at 1 s and at the end; the sampled maximum has no GC before it, so it includes garbage.`,
        `The download is 1 GiB but the reader stops after ${profile.s6Seconds} s: reading all of it at 1 MiB/s takes 17 minutes, and growth shows within seconds when it exists.`,
      ],
    }
  },
}
