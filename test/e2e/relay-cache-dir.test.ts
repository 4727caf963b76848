/**
 * The relay cache's directory (gw relay --relay-cache-dir): real relays restarted on one
 * directory, real agents, an upstream that counts what reaches it. A hit after a restart
 * is proven by the upstream not seeing the request.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { loadRelayConfig, startRelay, type Relay, type RelayOptions } from '@gw/relay'
import { startAgent, type Agent } from '@gw/cli/agent/agent'
import { spawnGw, startUpstream, tempDir, waitFor, type Upstream } from '../helpers/stack.js'

const TOKEN_1 = 'cache-dir-token-one'
const TOKEN_2 = 'cache-dir-token-two'

/** An upstream that counts requests per path; /big/* answers 2 MiB, the rest a short body. */
async function countingUpstream(): Promise<{ upstream: Upstream; count: (path: string) => number }> {
  const seen = new Map<string, number>()
  const upstream = await startUpstream((req, res) => {
    const path = req.url ?? '/'
    seen.set(path, (seen.get(path) ?? 0) + 1)
    req.resume()
    if (path.startsWith('/big/')) {
      res.writeHead(200, { 'cache-control': 'max-age=300', 'content-type': 'application/octet-stream' })
      return void res.end(Buffer.alloc(2 * 1024 * 1024, path.at(-1)))
    }
    if (path.startsWith('/sized/')) {
      res.writeHead(200, { 'cache-control': 'max-age=300' })
      return void res.end(Buffer.alloc(300_000, path.at(-1)))
    }
    res.writeHead(200, { 'cache-control': 'max-age=300', 'content-type': 'text/plain', etag: '"v1"' })
    res.end(`body of ${path} #${seen.get(path)}`)
  })
  return { upstream, count: (path) => seen.get(path) ?? 0 }
}

async function get(relay: Relay, host: string, path: string) {
  const res = await request(`${relay.httpUrl}${path}`, { headers: { host } })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, body, text: body.toString(), cacheStatus: String(res.headers['cache-status'] ?? ''), age: Number(res.headers.age) }
}

async function metric(relay: Relay, name: string): Promise<number> {
  const text = await (await request(relay.metricsUrl!)).body.text()
  const family = (parsePrometheusTextFormat(text) as Array<{ name: string; metrics: Array<{ value: string }> }>).find((f) => f.name === name)
  assert.ok(family, `${name} is exported`)
  return Number(family.metrics[0]?.value ?? 0)
}

/** Every file under the cache directory, as paths relative to it. */
function filesUnder(dir: string, sub = ''): string[] {
  const out: string[] = []
  for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
    const rel = join(sub, entry.name)
    if (entry.isDirectory()) out.push(...filesUnder(dir, rel))
    else out.push(rel)
  }
  return out
}

const bodies = (dir: string): string[] => filesUnder(dir).filter((f) => f.endsWith('.body'))

describe('relay cache directory', () => {
  // What a failed test left running is stopped at the end, so the file still ends.
  const running = new Set<{ close(): Promise<void> }>()
  const up = async <T extends { close(): Promise<void> }>(started: Promise<T>): Promise<T> => {
    const x = await started
    running.add(x)
    return x
  }
  const down = async (...xs: Array<{ close(): Promise<void> }>): Promise<void> => {
    for (const x of xs) {
      running.delete(x)
      await x.close()
    }
  }
  after(async () => {
    for (const x of running) await x.close().catch(() => {})
  })
  const dirs: string[] = []
  const dir = (): string => {
    const d = tempDir('gw-cache-dir-')
    dirs.push(d)
    return d
  }
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  const relayOptions = (stateDir: string, cacheDir: string, extra: Partial<RelayOptions['relayCache']> = {}): RelayOptions => ({
    host: '127.0.0.1', httpPort: 0, httpsPort: false, domain: 'localhost', stateDir, metricsAddr: '127.0.0.1:0',
    authtokens: [TOKEN_1, TOKEN_2],
    relayCache: { maxBytes: 32 * 1024 * 1024, maxEntryBytes: 4 * 1024 * 1024, dir: cacheDir, ...extra },
  })
  const agentOn = (relay: Relay, upstream: Upstream, publicName: string, authtoken = TOKEN_1): Promise<Agent> =>
    up(startAgent({ relay: relay.httpUrl!, authtoken, endpoints: [{ upstream: upstream.url, relayCache: true, publicName }] }))

  it('a restarted relay answers a stored fresh response from the directory, with its Age, without the upstream', async () => {
    const { upstream, count } = await countingUpstream()
    const stateDir = dir()
    const cacheDir = dir()
    try {
      let relay = await up(startRelay(relayOptions(stateDir, cacheDir)))
      let agent = await agentOn(relay, upstream, 'keep')
      const first = await get(relay, 'keep.localhost', '/page')
      assert.equal(first.cacheStatus, 'gw; fwd=miss; stored')
      await waitFor(async () => (await metric(relay, 'gw_relay_cache_disk_entries')) === 1, 10_000, 'the response written to the directory')
      assert.ok(await metric(relay, 'gw_relay_cache_disk_bytes') > first.body.length)
      // Files 0600 in directories 0700; neither the name nor the URL is in any path.
      const files = filesUnder(cacheDir)
      assert.equal(files.filter((f) => f.endsWith('.head')).length, 1)
      for (const f of files) {
        assert.doesNotMatch(f, /keep|page/, f)
        assert.equal(statSync(join(cacheDir, f)).mode & 0o777, 0o600, f)
      }
      assert.equal(statSync(join(cacheDir, 'relay-0')).mode & 0o777, 0o700)

      // A graceful stop (SIGTERM's drain) keeps the directory's entries.
      await relay.drain(2_000)
      running.delete(relay)
      await down(agent)
      await new Promise((r) => setTimeout(r, 1_100))
      relay = await up(startRelay(relayOptions(stateDir, cacheDir)))
      agent = await agentOn(relay, upstream, 'keep')
      const again = await get(relay, 'keep.localhost', '/page')
      assert.equal(again.status, 200)
      assert.equal(again.text, first.text)
      assert.match(again.cacheStatus, /^gw; hit; ttl=29[0-9]$/)
      assert.ok(again.age >= 1 && again.age < 60, `Age counts from the first response, got ${again.age}`)
      assert.equal(count('/page'), 1, 'the upstream saw only the request before the restart')
      assert.equal(await metric(relay, 'gw_relay_cache_disk_hits_total'), 1)
      // Back in memory: the next hit does not read the file.
      assert.match((await get(relay, 'keep.localhost', '/page')).cacheStatus, /^gw; hit/)
      assert.equal(await metric(relay, 'gw_relay_cache_disk_hits_total'), 1)
      assert.equal(count('/page'), 1)

      // A 2 MiB body is streamed from the file after a restart, whole.
      await get(relay, 'keep.localhost', '/big/a')
      await waitFor(async () => (await metric(relay, 'gw_relay_cache_disk_entries')) === 2, 10_000, 'the big response written')
      await down(relay)
      await down(agent)
      relay = await up(startRelay(relayOptions(stateDir, cacheDir)))
      agent = await agentOn(relay, upstream, 'keep')
      const big = await get(relay, 'keep.localhost', '/big/a')
      assert.match(big.cacheStatus, /^gw; hit/)
      assert.equal(big.body.length, 2 * 1024 * 1024)
      assert.ok(big.body.every((b) => b === 'a'.charCodeAt(0)))
      assert.equal(count('/big/a'), 1)

      // The name's last agent leaves: its entries go, from memory and from disk.
      await down(agent)
      await waitFor(async () => (await metric(relay, 'gw_relay_cache_disk_entries')) === 0, 10_000, 'the name purged')
      await waitFor(() => bodies(cacheDir).length === 0, 10_000, 'the files removed')
      await down(relay)
    } finally {
      await upstream.close()
    }
  })

  it('keeps names and owners apart: another name, or the same name under another token, never gets a stored response', async () => {
    const { upstream, count } = await countingUpstream()
    const cacheDir = dir()
    try {
      let relay = await up(startRelay(relayOptions(dir(), cacheDir)))
      let alpha = await agentOn(relay, upstream, 'alpha')
      const beta = await agentOn(relay, upstream, 'beta')
      await get(relay, 'alpha.localhost', '/shared')
      assert.equal((await get(relay, 'beta.localhost', '/shared')).cacheStatus, 'gw; fwd=miss; stored')
      assert.equal(count('/shared'), 2)
      await waitFor(async () => (await metric(relay, 'gw_relay_cache_disk_entries')) === 2, 10_000, 'both written')
      await down(relay)
      await down(alpha)
      await down(beta)

      // After the restart only the directory has them: alpha's is alpha's.
      relay = await up(startRelay(relayOptions(dir(), cacheDir)))
      alpha = await agentOn(relay, upstream, 'alpha')
      const gamma = await agentOn(relay, upstream, 'gamma')
      assert.equal((await get(relay, 'gamma.localhost', '/shared')).cacheStatus, 'gw; fwd=miss; stored')
      assert.match((await get(relay, 'alpha.localhost', '/shared')).cacheStatus, /^gw; hit/)
      assert.equal(count('/shared'), 3)
      await down(relay)
      await down(alpha)
      await down(gamma)

      // A fresh state directory: the name "beta" is free, and token two takes it. What token
      // one stored under beta is not its answer.
      relay = await up(startRelay(relayOptions(dir(), cacheDir)))
      const stranger = await agentOn(relay, upstream, 'beta', TOKEN_2)
      const res = await get(relay, 'beta.localhost', '/shared')
      assert.equal(res.cacheStatus, 'gw; fwd=miss; stored')
      assert.equal(count('/shared'), 4)
      await down(relay)
      await down(stranger)
    } finally {
      await upstream.close()
    }
  })

  it('stays within --relay-cache-dir-size, least recently used removed first', async () => {
    const { upstream, count } = await countingUpstream()
    const stateDir = dir()
    const cacheDir = dir()
    const mib = 1024 * 1024
    try {
      let relay = await up(startRelay(relayOptions(stateDir, cacheDir, { dirMaxBytes: mib })))
      let agent = await agentOn(relay, upstream, 'sized')
      // Three 300 kB bodies fit in 1 MiB, the fourth does not: /sized/1 goes.
      for (const n of [1, 2, 3]) {
        await get(relay, 'sized.localhost', `/sized/${n}`)
        await waitFor(async () => (await metric(relay, 'gw_relay_cache_disk_entries')) === n, 10_000, `entry ${n} written`)
      }
      await get(relay, 'sized.localhost', '/sized/4')
      await waitFor(async () => (await metric(relay, 'gw_relay_cache_disk_evictions_total')) === 1, 10_000, 'one eviction')
      await waitFor(() => bodies(cacheDir).length === 3, 10_000, 'the evicted files removed')
      assert.ok(await metric(relay, 'gw_relay_cache_disk_bytes') <= mib)
      const onDisk = filesUnder(cacheDir).filter((f) => f.endsWith('.body')).reduce((n, f) => n + statSync(join(cacheDir, f)).size, 0)
      assert.equal(onDisk, 900_000)
      await down(relay)
      await down(agent)

      relay = await up(startRelay(relayOptions(stateDir, cacheDir, { dirMaxBytes: mib })))
      agent = await agentOn(relay, upstream, 'sized')
      for (const n of [2, 3, 4]) assert.match((await get(relay, 'sized.localhost', `/sized/${n}`)).cacheStatus, /^gw; hit/, `/sized/${n}`)
      assert.equal((await get(relay, 'sized.localhost', '/sized/1')).cacheStatus, 'gw; fwd=miss; stored')
      assert.deepEqual([1, 2, 3, 4].map((n) => count(`/sized/${n}`)), [2, 1, 1, 1])
      await down(relay)
      await down(agent)
    } finally {
      await upstream.close()
    }
  })

  it('a corrupt or truncated file is never served: removed, and the request goes to the upstream', async () => {
    const { upstream, count } = await countingUpstream()
    const stateDir = dir()
    const cacheDir = dir()
    try {
      let relay = await up(startRelay(relayOptions(stateDir, cacheDir)))
      let agent = await agentOn(relay, upstream, 'broken')
      for (const path of ['/flipped', '/short', '/badhead', '/big/f', '/intact']) await get(relay, 'broken.localhost', path)
      await waitFor(async () => (await metric(relay, 'gw_relay_cache_disk_entries')) === 5, 10_000, 'five written')
      await down(relay)
      await down(agent)

      // Find each entry's files by the URL in its head, and damage them.
      const heads = filesUnder(cacheDir).filter((f) => f.endsWith('.head'))
      const fileOf = (path: string): string => {
        const head = heads.find((h) => readFileSync(join(cacheDir, h), 'utf8').includes(`"key":"broken http ${path}"`))
        assert.ok(head, path)
        return join(cacheDir, head.slice(0, -'.head'.length))
      }
      const flip = (file: string, at: number): void => {
        const bytes = readFileSync(file)
        bytes[at] = bytes[at]! ^ 0x01
        writeFileSync(file, bytes)
      }
      flip(`${fileOf('/flipped')}.body`, 3)
      truncateSync(`${fileOf('/short')}.body`, 4)
      writeFileSync(`${fileOf('/badhead')}.head`, readFileSync(`${fileOf('/badhead')}.head`, 'utf8').replace('"status":200', '"status":201'))
      const bigBody = `${fileOf('/big/f')}.body`
      flip(bigBody, 2 * 1024 * 1024 - 10)
      // A write cut short before its rename leaves a temp file: removed at start.
      writeFileSync(`${bigBody}.0123456789ab.tmp`, 'partial')

      relay = await up(startRelay(relayOptions(stateDir, cacheDir)))
      agent = await agentOn(relay, upstream, 'broken')
      // The bad head and the short body were found at start; the flipped bytes when read.
      assert.equal(await metric(relay, 'gw_relay_cache_disk_corrupt_total'), 2)
      assert.equal(filesUnder(cacheDir).filter((f) => f.endsWith('.tmp')).length, 0)
      for (const path of ['/flipped', '/short', '/badhead']) {
        const res = await get(relay, 'broken.localhost', path)
        assert.equal(res.status, 200)
        assert.equal(res.cacheStatus, 'gw; fwd=miss; stored', path)
        assert.equal(res.text, `body of ${path} #2`, path)
      }
      assert.match((await get(relay, 'broken.localhost', '/intact')).cacheStatus, /^gw; hit/)
      assert.equal(count('/intact'), 1)
      assert.equal(await metric(relay, 'gw_relay_cache_disk_corrupt_total'), 3)
      // A large body is checked as it streams: its last piece is held back, so the client
      // gets a cut response, never a whole wrong one; then the upstream answers.
      await assert.rejects(get(relay, 'broken.localhost', '/big/f'))
      assert.equal(await metric(relay, 'gw_relay_cache_disk_corrupt_total'), 4)
      const refetched = await get(relay, 'broken.localhost', '/big/f')
      assert.equal(refetched.cacheStatus, 'gw; fwd=miss; stored')
      assert.ok(refetched.body.every((b) => b === 'f'.charCodeAt(0)))
      assert.equal(count('/big/f'), 2)
      await down(relay)
      await down(agent)
    } finally {
      await upstream.close()
    }
  })

  it('two relays on one directory each keep a part of their own', async () => {
    const cacheDir = dir()
    const a = await up(startRelay(relayOptions(dir(), cacheDir)))
    const b = await up(startRelay(relayOptions(dir(), cacheDir)))
    try {
      assert.deepEqual(readdirSync(cacheDir).sort(), ['relay-0', 'relay-1'])
      assert.equal(readFileSync(join(cacheDir, 'relay-0', 'lock'), 'utf8').trim(), String(process.pid))
    } finally {
      await down(a)
      await down(b)
    }
    // Let go at close: the next relay takes relay-0 again.
    const c = await up(startRelay(relayOptions(dir(), cacheDir)))
    await down(c)
    assert.equal(readdirSync(join(cacheDir, 'relay-1')).length, 0)
  })
})

describe('relay cache directory settings', () => {
  it('relay_cache_dir and relay_cache_dir_size in relay.yml; errors name the key and the fix', () => {
    const d = tempDir()
    try {
      const file = join(d, 'relay.yml')
      writeFileSync(file, 'domain: tunnel.example.com\nrelay_cache: 64MB\nrelay_cache_dir: /var/cache/gw-relay\nrelay_cache_dir_size: 10GB\n')
      assert.deepEqual(loadRelayConfig(file).settings.relayCache, { maxBytes: 64_000_000, dir: '/var/cache/gw-relay', dirMaxBytes: 10_000_000_000 })
      writeFileSync(file, 'domain: tunnel.example.com\nrelay_cache_dir: /var/cache/gw-relay\n')
      assert.throws(() => loadRelayConfig(file), /relay_cache_dir: "\/var\/cache\/gw-relay" needs relay_cache/)
      writeFileSync(file, 'domain: tunnel.example.com\nrelay_cache: 64MB\nrelay_cache_dir: /x\nrelay_cache_dir_size: huge\n')
      assert.throws(() => loadRelayConfig(file), /relay_cache_dir_size: "huge" is not a size/)
    } finally {
      rmSync(d, { recursive: true, force: true })
    }
  })

  it('gw relay --relay-cache-dir: a directory that cannot be made is GW_ERR_RELAY_CACHE_DIR; the flag serves from it', async () => {
    const d = tempDir()
    try {
      writeFileSync(join(d, 'file'), 'not a directory')
      const bad = spawnGw(['relay', '--domain', 'localhost', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', d,
        '--relay-cache', '8MB', '--relay-cache-dir', join(d, 'file', 'cache')])
      assert.equal(await bad.exited, 1)
      assert.match(bad.stderr(), /GW_ERR_RELAY_CACHE_DIR/)
      assert.match(bad.stderr(), /--relay-cache-dir .*file\/cache cannot be used: .*give a directory the relay's user may create and write/)
      const tooSmall = spawnGw(['relay', '--domain', 'localhost', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', d,
        '--relay-cache', '8MB', '--relay-cache-dir', join(d, 'cache'), '--relay-cache-dir-size', '10KB'])
      assert.notEqual(await tooSmall.exited, 0)
      assert.match(tooSmall.stderr(), /--relay-cache-dir-size must be at least 1MiB, got 10000 bytes/)

      // One process: the part's lock holds the relay's pid (with --workers, each worker's).
      const gw = spawnGw(['relay', '--domain', 'localhost', '--host', '127.0.0.1', '--http-port', '0', '--https-port', '-1', '--state-dir', d,
        '--relay-cache', '8MB', '--relay-cache-dir', join(d, 'cache'), '--relay-cache-dir-size', '2MB', '--workers', '1'])
      try {
        await gw.waitForLine((l) => l.includes('relay started'), 20_000)
        assert.equal(readFileSync(join(d, 'cache', 'relay-0', 'lock'), 'utf8').trim(), String(gw.child.pid))
      } finally {
        gw.kill('SIGTERM')
        assert.equal(await gw.exited, 0)
      }
    } finally {
      rmSync(d, { recursive: true, force: true })
    }
  })
})
