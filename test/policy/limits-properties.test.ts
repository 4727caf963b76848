/**
 * Properties of the pieces the policy engine trusts: CIDR matching against a reference
 * bit-mask implementation, the rate-limit algorithms' bounds under arbitrary arrival
 * times, and durations.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createCidrSet } from '@gw/cli/policy/cidr'
import { createSlidingWindow, createTokenBucket } from '@gw/cli/policy/rate-limiter'
import { parseDuration } from '@gw/cli/policy/duration'

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
const toText = (o: [number, number, number, number]) => o.join('.')
const toInt = (o: [number, number, number, number]) => ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0

test('IPv4 CIDR membership matches a bit-mask reference, also for IPv4-mapped IPv6 clients', () => {
  fc.assert(fc.property(ipv4, fc.nat(32), ipv4, (net, prefix, ip) => {
    const set = createCidrSet([`${toText(net)}/${prefix}`])
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0
    const expected = ((toInt(net) & mask) >>> 0) === ((toInt(ip) & mask) >>> 0)
    assert.equal(set.has(toText(ip)), expected)
    assert.equal(set.has(`::ffff:${toText(ip)}`), expected)
  }), { numRuns: 500 })
})

test('sliding window: never more than capacity in one fixed window, whatever the arrival times', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 10, max: 1000 }), fc.array(fc.nat(5000), { minLength: 1, maxLength: 300 }), (capacity, windowMs, gaps) => {
    const limiter = createSlidingWindow(capacity, windowMs)
    let now = 0
    const perWindow = new Map<number, number>()
    for (const gap of gaps) {
      now += gap % (windowMs * 2)
      if (limiter.take('k', now) === 0) {
        const w = Math.floor(now / windowMs)
        perWindow.set(w, (perWindow.get(w) ?? 0) + 1)
      }
    }
    for (const n of perWindow.values()) assert.ok(n <= capacity)
  }), { numRuns: 200 })
})

test('sliding window: waiting the time a refused request is told is enough', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 10, max: 1000 }), fc.array(fc.nat(500), { minLength: 1, maxLength: 200 }), (capacity, windowMs, gaps) => {
    const limiter = createSlidingWindow(capacity, windowMs)
    let now = 0
    for (const gap of gaps) {
      now += gap
      const wait = limiter.take('k', now)
      if (wait > 0) {
        now += wait
        assert.equal(limiter.take('k', now), 0, `after waiting ${wait} ms`)
      }
    }
  }), { numRuns: 200 })
})

test('token bucket: allowed requests in any span ≤ capacity + span × rate; a refused request is told a wait that then succeeds', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 10, max: 1000 }), fc.array(fc.nat(200), { minLength: 1, maxLength: 200 }), (capacity, periodMs, gaps) => {
    const limiter = createTokenBucket(capacity, periodMs)
    let now = 0
    const allowed: number[] = []
    for (const gap of gaps) {
      now += gap
      const wait = limiter.take('k', now)
      if (wait === 0) allowed.push(now)
      else {
        assert.ok(wait >= 1)
        // Waiting exactly as told is enough (nothing else took a token meanwhile).
        now += wait
        assert.equal(limiter.take('k', now), 0)
        allowed.push(now)
      }
    }
    for (let i = 0; i < allowed.length; i++) {
      for (let j = i; j < allowed.length; j++) {
        const span = allowed[j]! - allowed[i]!
        assert.ok(j - i + 1 <= capacity + Math.floor((span * capacity) / periodMs) + 1, `${j - i + 1} requests in ${span} ms`)
      }
    }
  }), { numRuns: 150 })
})

test('durations: Go spellings add up; a bare number is seconds; junk is rejected', () => {
  fc.assert(fc.property(fc.nat(100), fc.nat(59), fc.nat(59), fc.nat(999), (h, m, s, ms) => {
    assert.equal(parseDuration(`${h}h${m}m${s}s${ms}ms`), ((h * 60 + m) * 60 + s) * 1000 + ms)
  }))
  assert.equal(parseDuration('90'), 90_000)
  assert.equal(parseDuration(1.5), 1_500)
  for (const bad of ['', '1x', 's', '1m junk', '-1s', '1.s']) assert.equal(parseDuration(bad), undefined, bad)
})
