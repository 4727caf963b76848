#!/usr/bin/env node
// A simulation, not a benchmark: simulated agents and relays, no network. It sizes a gw
// cluster (docs/scaling.md) for a number of agents and a request rate from per-unit costs
// measured on real processes, and plays a relay failure event by event to see how long
// failover takes.
//
//   node bench/cluster-sim.mjs                       # 100,000 agents, 50,000 req/s
//   node bench/cluster-sim.mjs --agents 20000 --rps 5000 --cores 4 --seed 7
//
// Measured inputs (override with flags; where each comes from is in docs/scaling.md):
//   --relay-us 94          relay CPU µs per request when it holds the agent (bench/tools/cluster-two-relays.mjs, relay A row)
//   --forward-us 60        extra relay CPU µs per forwarded request, both relays together (same tool: 103 + 51 - 94)
//   --agent-kib 50         relay RSS per idle agent (latest.md, scenario 5)
//   --hello-ms 2.3         relay time to admit one agent (latest.md, scenario 5: 1,000 agents in 2.3 s)
//   --redis-ops 35000      Redis commands per second one at a time (redis-benchmark -c 50 on this 2-core machine; docs/scaling.md)
// Cluster settings (gw's defaults):
//   --ttl 15000 --lookup-cache 1000 --heartbeat-timeout 15000 --backoff 500
// Sizing:
//   --cores 8              cores per relay machine (one --workers worker each)
//   --memory-gib 16        memory per relay machine
//   --headroom 0.6         fraction of CPU and memory a relay may use, so that the others can take a dead one's load
//   --names-per-agent 1    --hot-names 0.05 (share of names that get traffic)

const flag = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? dflt : Number(process.argv[i + 1])
}
const p = {
  agents: flag('agents', 100_000),
  rps: flag('rps', 50_000),
  relayUs: flag('relay-us', 94),
  forwardUs: flag('forward-us', 60),
  agentKib: flag('agent-kib', 50),
  helloMs: flag('hello-ms', 2.3),
  redisOps: flag('redis-ops', 35_000),
  ttl: flag('ttl', 15_000),
  lookupCache: flag('lookup-cache', 1_000),
  heartbeatTimeout: flag('heartbeat-timeout', 15_000),
  backoff: flag('backoff', 500),
  cores: flag('cores', 8),
  memoryGib: flag('memory-gib', 16),
  headroom: flag('headroom', 0.6),
  namesPerAgent: flag('names-per-agent', 1),
  hotNames: flag('hot-names', 0.05),
  seed: flag('seed', 1),
}

// A small seeded PRNG, so a run can be repeated.
let state = p.seed >>> 0 || 1
const random = () => {
  state ^= state << 13
  state ^= state >>> 17
  state ^= state << 5
  return (state >>> 0) / 4294967296
}

// ---- Sizing -------------------------------------------------------------------------------
// Each relay machine runs one worker per core (--workers), and every worker is a member of
// the cluster holding its own agents. With M members behind one DNS name, a client lands
// on the member holding the agent 1 time in M: the other (M-1)/M of requests are forwarded
// (over loopback between workers of one machine, over the network between machines).
const membersOf = (relays) => relays * p.cores
function cpuCoresNeeded(relays) {
  const m = membersOf(relays)
  const forwarded = m > 1 ? (m - 1) / m : 0
  return (p.rps * (p.relayUs + forwarded * p.forwardUs)) / 1e6
}
function relaysNeeded() {
  const memory = p.memoryGib * 1024 * 1024
  const byMemory = Math.ceil((p.agents * p.agentKib) / (memory * p.headroom))
  // At least two machines, and with one of them dead the rest still fit (N+1).
  for (let r = Math.max(2, byMemory); r < 10_000; r++) {
    const fits = cpuCoresNeeded(r) <= r * p.cores * p.headroom
    const survives = cpuCoresNeeded(r - 1) <= (r - 1) * p.cores && p.agents * p.agentKib <= (r - 1) * memory * 0.9
    if (fits && survives) return { relays: r, byMemory }
  }
  throw new Error('no cluster size fits')
}
const { relays, byMemory } = relaysNeeded()
const members = membersOf(relays)
const forwardedShare = members > 1 ? (members - 1) / members : 0
const names = p.agents * p.namesPerAgent
const hot = Math.max(1, Math.round(names * p.hotNames))

// ---- Redis traffic -----------------------------------------------------------------------
// Heartbeat (every ttl/3): per relay SET record, ZADD + ZREMRANGEBYSCORE on the relay set,
// ZRANGEBYSCORE + MGET of the records; per held name ZADD + PEXPIRE.
const beatsPerSecond = 1000 / (p.ttl / 3)
const heartbeatOps = beatsPerSecond * (members * 5 + names * 2)
// Lookups: one Lua call (4 commands inside) per hot name per member per lookup-cache period
// (concurrent lookups share one), and never more than the forwarded requests themselves.
const lookupOps = Math.min(p.rps * forwardedShare, (hot * (members - 1) * 1000) / p.lookupCache) * 4
const redisOps = heartbeatOps + lookupOps
const redisCores = redisOps / p.redisOps

// ---- Failover: one relay dies -------------------------------------------------------------
// Event by event: each of the dead relay's agents notices (at once on a crash; up to the
// heartbeat timeout when the machine vanishes), waits its reconnect delay (uniform in
// [backoff/2, backoff]), and dials a random surviving relay, which admits hellos one after
// another at hello-ms each, one queue per core. Each admission is one claim (a Lua call of
// about 6 commands) and two presence commands in Redis.
function failover(detectMs) {
  const dead = Math.round(p.agents / relays)
  const queues = Array.from({ length: (relays - 1) * p.cores }, () => 0)
  const arrivals = []
  for (let i = 0; i < dead; i++) arrivals.push(detectMs * random() + p.backoff / 2 + (random() * p.backoff) / 2)
  arrivals.sort((a, b) => a - b)
  const done = []
  for (const at of arrivals) {
    const q = Math.floor(random() * queues.length)
    const start = Math.max(at, queues[q])
    queues[q] = start + p.helloMs
    done.push(queues[q])
  }
  done.sort((a, b) => a - b)
  const pct = (x) => done[Math.min(done.length - 1, Math.floor(done.length * x))]
  const spanS = Math.max(0.001, (done[done.length - 1] - done[0]) / 1000)
  return { dead, p50: pct(0.5), p99: pct(0.99), max: done[done.length - 1], redisPeak: (dead * 8) / spanS }
}
const crash = failover(0)
const lost = failover(p.heartbeatTimeout)

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
console.log(`# gw cluster simulation: ${fmt(p.agents)} agents, ${fmt(p.rps)} req/s`)
console.log()
console.log('| quantity | value |')
console.log('|---|---|')
console.log(`| relay machines (${p.cores} cores and workers, ${p.memoryGib} GiB each, ${Math.round(p.headroom * 100)}% headroom, N+1) | ${relays} (memory alone needs ${byMemory}); ${members} cluster members |`)
console.log(`| requests forwarded to another relay | ${fmt(forwardedShare * 100)}% |`)
console.log(`| relay CPU | ${fmt(cpuCoresNeeded(relays), 1)} cores in all, ${fmt((cpuCoresNeeded(relays) / (relays * p.cores)) * 100)}% of the cluster |`)
console.log(`| relay memory for agents | ${fmt((p.agents * p.agentKib) / 1024 / 1024, 1)} GiB in all, ${fmt((p.agents * p.agentKib) / 1024 / relays)} MiB per relay |`)
console.log(`| Redis: heartbeats | ${fmt(heartbeatOps)} commands/s |`)
console.log(`| Redis: lookups (${fmt(hot)} hot names, cached ${p.lookupCache} ms) | ${fmt(lookupOps)} commands/s |`)
console.log(`| Redis in all | ${fmt(redisOps)} commands/s, ${fmt(redisCores, 2)} of one Redis core at ${fmt(p.redisOps)} commands/s |`)
console.log(`| failover, relay machine crash (agents notice at once): ${fmt(crash.dead)} agents move | p50 ${fmt(crash.p50)} ms, p99 ${fmt(crash.p99)} ms, all ${fmt(crash.max)} ms; Redis peak ${fmt(crash.redisPeak)} commands/s |`)
console.log(`| failover, relay machine lost (heartbeat timeout ${p.heartbeatTimeout} ms) | p50 ${fmt(lost.p50)} ms, p99 ${fmt(lost.p99)} ms, all ${fmt(lost.max)} ms |`)
