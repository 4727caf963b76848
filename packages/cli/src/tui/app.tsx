/**
 * The TUI's root: reads the agent's events, the capture and the metrics, and owns the
 * keys. It never reaches into the agent.
 *
 * Repaints are batched: events only set a dirty flag, and a timer (`refreshMs`, 50 ms)
 * turns a dirty flag into one React update, so 1,000 requests a second cost at most 20
 * renders a second, and an idle agent repaints once a second for the rates and latency.
 */
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react'
import { Box, Text, useApp, useInput, useStdin, useStdout } from 'ink'
import type { AgentEventMap, AgentEvents, AgentStatus } from '../agent/events.js'
import type { Capture, CaptureRecord } from '../inspect/capture.js'
import type { Metrics } from '../inspect/metrics.js'
import { replayCaptured, type ReplayFn } from '../inspect/replay.js'
import { detailLines } from './detail-lines.js'
import { matchesFilter, parseFilter } from './filter.js'
import { Footer } from './footer.js'
import { Header, headerHeight } from './header.js'
import { METRICS_HEIGHT, MetricsBar } from './metrics-bar.js'
import { RequestDetail } from './request-detail.js'
import { RequestList } from './request-list.js'

export interface AppProps {
  events: AgentEvents
  getStatus: () => AgentStatus
  capture: Capture
  metrics: Metrics
  replay: ReplayFn
  apiUrl: string
  /** Batch window for repaints; 50 ms = at most 20 a second. */
  refreshMs?: number
  /** Called when the user quits (q, Ctrl-C). */
  onQuit?: () => void
  /** Ink's own time for the last frame (its `onRender`), added to React's for pacing. */
  inkCost?: { current: number }
}

/**
 * The newest requests the list holds. Reading them costs per repaint, so the TUI keeps
 * to what a person scrolls through; the web inspector and the API have the rest.
 */
const LIST_LIMIT = 1000

interface Flash {
  text: string
  color: string
}

function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout()
  const read = () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 })
  const [size, setSize] = useState(read)
  useEffect(() => {
    const onResize = () => setSize(read())
    stdout.on('resize', onResize)
    return () => {
      stdout.off('resize', onResize)
    }
  }, [stdout])
  return size
}

/** The longest a busy screen waits between repaints. */
const MAX_BATCH_MS = 500
/** Under sustained traffic, repaints may take this share of the agent's one thread. */
const REPAINT_SHARE = 0.05

/**
 * A counter that moves at most every `refreshMs` while something changed, and once a
 * second when nothing did (rates and latency move anyway).
 *
 * Under sustained traffic (three dirty ticks in a row) the wait after a repaint grows
 * with what the repaint cost, so repaints take at most about 5% of the thread the
 * agent also forwards requests on; the first change after a quiet spell still shows
 * within `refreshMs`. `lastCost` is React's render and commit (measured by the App)
 * plus Ink's frame (from its `onRender`).
 */
function useBatchedTick(events: AgentEvents, capture: Capture, refreshMs: number, lastCost: { current: number }): number {
  const [tick, setTick] = useState(0)
  // Starts dirty: events may have come before the effect below subscribed.
  const dirty = useRef(true)
  useEffect(() => {
    const mark = () => {
      dirty.current = true
    }
    const names = ['exchange:start', 'exchange:response', 'exchange:end', 'status'] as const
    for (const name of names) events.on(name, mark)
    capture.changes.on('clear', mark)
    capture.changes.on('remove', mark)
    let lastPaint = Date.now()
    let busy = 0
    let timer: NodeJS.Timeout
    const loop = (): void => {
      let delay = refreshMs
      const wasDirty = dirty.current
      if (wasDirty || Date.now() - lastPaint >= 1000) {
        dirty.current = false
        lastPaint = Date.now()
        busy = wasDirty ? busy + 1 : 0
        setTick((n) => n + 1)
        if (busy >= 3) delay = Math.min(MAX_BATCH_MS, Math.max(refreshMs, lastCost.current / REPAINT_SHARE))
      } else busy = 0
      timer = setTimeout(loop, delay)
    }
    timer = setTimeout(loop, refreshMs)
    return () => {
      clearTimeout(timer)
      for (const name of names) events.off(name, mark)
      capture.changes.off('clear', mark)
      capture.changes.off('remove', mark)
    }
  }, [events, capture, refreshMs, lastCost])
  return tick
}

/** An http URL works with plain curl; the embedded relay's https needs its CA. */
function tryUrl(status: AgentStatus): string {
  const urls = status.tunnels.flatMap((t) => (t.publicUrls.length > 0 ? t.publicUrls : [t.publicUrl]))
  return urls.find((u) => u.startsWith('http:')) ?? urls[0] ?? 'your public URL'
}

export function App(props: AppProps) {
  const { events, getStatus, capture, metrics, replay, apiUrl } = props
  const { exit } = useApp()
  // With stdin not a terminal (`gw http 3000 < /dev/null`) there are no keys to read, and
  // asking for raw mode would throw: the UI then only shows, and Ctrl-C ends gw.
  const { isRawModeSupported } = useStdin()
  const { columns, rows } = useTerminalSize()
  const renderStart = performance.now()
  const lastCost = useRef(0)
  useLayoutEffect(() => {
    lastCost.current = performance.now() - renderStart + (props.inkCost?.current ?? 0)
  })
  const tick = useBatchedTick(events, capture, props.refreshMs ?? 50, lastCost)

  const [view, setView] = useState<'list' | 'detail'>('list')
  /** undefined: follow the newest request. */
  const [selectedId, setSelectedId] = useState<string | undefined>(undefined)
  const [filter, setFilter] = useState('')
  const [editingFilter, setEditingFilter] = useState(false)
  const [scroll, setScroll] = useState(0)
  const [flash, setFlash] = useState<Flash | undefined>(undefined)
  const top = useRef(0)
  const flashTimer = useRef<NodeJS.Timeout | undefined>(undefined)

  useEffect(() => () => clearTimeout(flashTimer.current), [])

  // The TUI replaces the log lines, so warnings and errors (a reconnect, an upstream
  // ejected from a pool) show in the footer for a while instead of being lost.
  useEffect(() => {
    const onLog = (line: AgentEventMap['log'][0]): void => {
      if (line.level !== 'warn' && line.level !== 'error') return
      const fields = Object.entries(line.fields)
        .filter(([, v]) => v !== undefined && typeof v !== 'object')
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ')
      say(`${line.level}: ${line.msg}${fields ? ` ${fields}` : ''}`, line.level === 'error' ? 'red' : 'yellow')
    }
    events.on('log', onLog)
    return () => {
      events.off('log', onLog)
    }
  }, [events])

  const status = getStatus()
  const snapshot = useMemo(() => metrics.snapshot(), [metrics, tick])
  const terms = useMemo(() => parseFilter(filter), [filter])
  const records = useMemo(
    () => capture.list({ limit: LIST_LIMIT, ...(terms.length > 0 ? { filter: (r: CaptureRecord) => matchesFilter(r, terms) } : {}) }),
    [capture, terms, tick],
  )

  // The screen is rows - 1 lines: a frame as tall as the terminal makes Ink clear the
  // whole screen on each repaint, which flickers.
  const maxTunnelLines = rows >= 24 ? 4 : 2
  const head = headerHeight(status, maxTunnelLines)
  const bodyHeight = Math.max(3, rows - 1 - head - METRICS_HEIGHT - 1 - 1)
  const visible = bodyHeight - 1

  let index = selectedId === undefined ? 0 : records.findIndex((r) => r.id === selectedId)
  if (index === -1) index = 0
  const selected: CaptureRecord | undefined = view === 'detail' && selectedId !== undefined ? capture.get(selectedId) : records[index]
  if (index < top.current) top.current = index
  if (index >= top.current + visible) top.current = index - visible + 1
  top.current = Math.max(0, Math.min(top.current, Math.max(0, records.length - visible)))
  const windowed = records.slice(top.current, top.current + visible)

  const detail = useMemo(
    () => (view === 'detail' && selected !== undefined ? detailLines(selected) : []),
    [view, selected, selected?.state, selected?.exchange.response, tick],
  )

  function say(text: string, color = 'green'): void {
    setFlash({ text, color })
    clearTimeout(flashTimer.current)
    flashTimer.current = setTimeout(() => setFlash(undefined), 4000)
  }

  function quit(): void {
    props.onQuit?.()
    exit()
  }

  function replaySelected(): void {
    const selected = live.current.selected
    if (selected === undefined) return say('no request selected', 'yellow')
    const what = `${selected.exchange.request.method} ${selected.exchange.request.target}`
    say(`replaying ${what}…`, 'cyan')
    replayCaptured(capture, replay, selected.id).then(
      () => say(`replayed ${what}`),
      (err: { code?: string; message?: string }) => say(`replay failed: ${err.code ?? 'error'}: ${err.message ?? String(err)}`, 'red'),
    )
  }

  // Ink re-subscribes the input handler in an effect, which can run after the next key
  // arrives; the handler therefore reads this render's values from a ref, never from a
  // closure that may be one render old.
  const live = useRef({ records, index, selected, visible, bodyHeight, detail, view, editingFilter })
  live.current = { records, index, selected, visible, bodyHeight, detail, view, editingFilter }

  useInput((input, key) => {
    const { records, index, visible, bodyHeight, detail, view, editingFilter } = live.current
    if (key.ctrl && input === 'c') return quit()
    if (editingFilter) {
      if (key.return) setEditingFilter(false)
      else if (key.escape) {
        setFilter('')
        setEditingFilter(false)
      } else if (key.backspace || key.delete) setFilter((f) => f.slice(0, -1))
      else if (!key.ctrl && !key.meta && input.length > 0 && !/[\x00-\x1f]/.test(input)) setFilter((f) => f + input)
      setSelectedId(undefined)
      return
    }
    if (input === 'q') return quit()
    if (input === 'r') return replaySelected()
    if (view === 'detail') {
      const page = Math.max(1, bodyHeight - 2)
      const last = Math.max(0, detail.length - (bodyHeight - 1))
      if (key.escape || key.leftArrow || key.backspace || key.delete || key.return) {
        setView('list')
        setScroll(0)
      } else if (key.upArrow) setScroll((s) => Math.max(0, s - 1))
      else if (key.downArrow) setScroll((s) => Math.min(last, s + 1))
      else if (key.pageUp) setScroll((s) => Math.max(0, s - page))
      else if (key.pageDown) setScroll((s) => Math.min(last, s + page))
      return
    }
    const select = (i: number): void => {
      if (records.length === 0) return
      const clamped = Math.max(0, Math.min(records.length - 1, i))
      setSelectedId(clamped === 0 && i < 0 ? undefined : records[clamped]!.id)
    }
    if (key.upArrow) select(index - 1)
    else if (key.downArrow) select(index + 1)
    else if (key.pageUp) select(index - visible)
    else if (key.pageDown) select(index + visible)
    else if (key.home) setSelectedId(undefined)
    else if (key.return) {
      if (records[index] === undefined) return
      setSelectedId(records[index]!.id)
      setScroll(0)
      setView('detail')
    } else if (input === '/') {
      setEditingFilter(true)
    } else if (input === 'c') {
      capture.clear()
      setSelectedId(undefined)
      say('cleared')
    }
  }, { isActive: isRawModeSupported })

  const empty = !capture.enabled
    ? 'capture is off (--inspect=false): requests are counted above but not recorded'
    : filter !== ''
      ? `no request matches "${filter}"`
      : `no requests yet: try curl ${tryUrl(status)}`

  return (
    <Box flexDirection="column" width={columns}>
      <Header status={status} apiUrl={apiUrl} columns={columns} maxTunnelLines={maxTunnelLines} />
      <MetricsBar metrics={snapshot} />
      <Text> </Text>
      {view === 'detail' && selected !== undefined ? (
        <RequestDetail lines={detail} scroll={scroll} columns={columns} height={bodyHeight} />
      ) : view === 'detail' ? (
        <Box height={bodyHeight}>
          <Text dimColor>this request was dropped from the capture buffer; Esc to go back</Text>
        </Box>
      ) : (
        <RequestList records={windowed} selectedId={selectedId === undefined ? records[0]?.id : selectedId} columns={columns} height={bodyHeight} empty={empty} />
      )}
      <Footer keys={isRawModeSupported} view={view} filter={filter} editingFilter={editingFilter} flash={flash} columns={columns} />
    </Box>
  )
}
