import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createBreaker, type BreakerOptions, type BreakerState } from '../../src/resilience/breaker.ts'

function breaker (overrides: Partial<BreakerOptions> = {}) {
  let now = 0
  const transitions: BreakerState[] = []
  const instance = createBreaker({
    failureRatio: 0.5,
    minVolume: 20,
    windowMs: 10_000,
    consecutiveFailures: 10,
    openMs: 5_000,
    halfOpenProbes: 3,
    onStateChange: (state) => transitions.push(state),
    now: () => now,
    ...overrides
  })
  return { instance, transitions, advance: (ms: number) => { now += ms } }
}

// A small seeded generator, so a failing run can be replayed.
function random (seed: number) {
  return () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
    return seed / 2 ** 31
  }
}

test('a 20 % failure rate never opens the breaker: 100,000 calls at 200 a second, at random', () => {
  const { instance, transitions, advance } = breaker()
  const next = random(42)
  for (let i = 0; i < 100_000; i++) {
    assert.ok(instance.tryAcquire())
    if (next() < 0.2) instance.failure()
    else instance.success()
    advance(5)
  }
  assert.deepEqual(transitions, [])
})

test('at volume, a failure rate over the threshold opens it; below the volume, a run of failures does', () => {
  const busy = breaker()
  for (let i = 0; i < 40 && busy.instance.state === 'closed'; i++) {
    busy.instance.tryAcquire()
    if (i % 4 === 0) busy.instance.success()
    else busy.instance.failure()
  }
  assert.deepEqual(busy.transitions, ['open'])

  const quiet = breaker()
  for (let i = 0; i < 9; i++) quiet.instance.failure()
  quiet.instance.success()
  for (let i = 0; i < 9; i++) quiet.instance.failure()
  assert.equal(quiet.instance.state, 'closed', 'nine in a row, twice, is not ten')
  quiet.instance.failure()
  assert.equal(quiet.instance.state, 'open')
  assert.equal(quiet.instance.tryAcquire(), false)
  assert.equal(quiet.instance.retryAfterMs(), 5_000)
})

test('half-open lets a few probes through, closes on a majority of successes and reopens on a majority of failures', () => {
  const { instance, transitions, advance } = breaker({ minVolume: 1, failureRatio: 0.5 })
  instance.failure()
  assert.equal(instance.state, 'open')
  advance(5_000)
  assert.equal(instance.state, 'half_open')
  assert.deepEqual([1, 2, 3, 4].map(() => instance.tryAcquire()), [true, true, true, false], 'three probes, no more')
  instance.failure()
  instance.success()
  instance.failure()
  assert.equal(instance.state, 'open', 'two of three probes failed')

  advance(5_000)
  assert.ok(instance.tryAcquire() && instance.tryAcquire())
  instance.success()
  instance.success()
  assert.equal(instance.state, 'closed', 'two of three probes succeeded')
  assert.deepEqual(transitions, ['open', 'half_open', 'open', 'half_open', 'closed'])
})

test('outcomes that say nothing about the upstream are released: they never open it, and free a probe slot', () => {
  const { instance, advance } = breaker({ minVolume: 1, consecutiveFailures: 1 })
  for (let i = 0; i < 1_000; i++) {
    assert.ok(instance.tryAcquire())
    instance.release()
  }
  assert.equal(instance.state, 'closed')

  instance.failure()
  advance(5_000)
  assert.ok(instance.tryAcquire() && instance.tryAcquire() && instance.tryAcquire())
  assert.equal(instance.tryAcquire(), false)
  instance.release()
  assert.equal(instance.tryAcquire(), true, 'a released probe makes room for another')
  assert.equal(instance.state, 'half_open')
})
