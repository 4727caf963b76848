/**
 * Every relay metric the README names (the metrics table, the Grafana panels, the alert
 * rules) is one a real relay exports: scraped from `--metrics-addr` (with the cache on),
 * read by a Prometheus text parser. A renamed metric breaks this test, not a dashboard.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { request } from 'undici'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { startStack, tempDir } from '../helpers/stack.js'

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')

it('names only metrics the relay exports', async (t) => {
  const cacheDir = tempDir()
  const stack = await startStack((_req, res) => res.end('ok'), { relay: { metricsAddr: '127.0.0.1:0', relayCache: { maxBytes: 1024 * 1024, dir: cacheDir } } })
  t.after(async () => {
    await stack.close()
    rmSync(cacheDir, { recursive: true, force: true })
  })
  await (await request(`${stack.httpOrigin}/`, { headers: { host: stack.host } })).body.text()
  const text = await (await request(stack.relay.metricsUrl!)).body.text()
  const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f.type]))

  // Names written whole; `gw_relay_process_*` stands for a family of prom-client's.
  const named = new Set([...readme.matchAll(/\bgw_relay_[a-z0-9_]+\b(?!\*)/g)].map((m) => m[0]).filter((n) => !n.endsWith('_')))
  assert.ok(named.size >= 20, `the README names ${named.size} metrics`)
  for (const name of named) {
    const base = name.replace(/_(bucket|sum|count)$/, '')
    const known = families.has(name) || (base !== name && families.get(base) === 'HISTOGRAM')
    assert.ok(known, `README names ${name}, which the relay does not export`)
  }
  // And the other way: every gw_relay_ metric of gw's own is in the README.
  for (const name of families.keys()) {
    if (/^gw_relay_(process|nodejs)_/.test(name)) continue
    assert.ok(named.has(name) || readme.includes(`\`${name}\``), `${name} is exported but not in the README`)
  }
})
